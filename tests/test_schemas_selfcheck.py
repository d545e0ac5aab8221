"""Self-check of the CDS Hooks 2.0.1 JSON Schemas in service/schemas/.

* every schema is a valid draft 2020-12 schema with $schema/$id/title/description;
* every applicable JSON example of the CDS Hooks 2.0.1 specification
  (spec-2.0.1.md) and of the hook definitions (patient-view, order-select,
  order-sign) validates -- examples are copied below verbatim as Python dicts
  (Jekyll ``{% raw %}`` escapes in prefetch templates resolved to ``{{``);
* the few spec examples that contradict the spec's own attribute tables are
  pinned as *known spec defects*: they must fail for exactly that reason and
  pass once that one defect is repaired;
* negative cases that the strict profile must reject.

Not copied (not applicable to any schema here): the JWT/JWK examples, the
generic hook-definition template context (``someField`` ...), and the partial
``{"context": {"patientId": "123"}}`` token illustration.
"""

import copy
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).parent.parent / "service" / "schemas"
SCHEMA_FILES = {
    "response": "response.schema.json",
    "discovery": "discovery.schema.json",
    "request": "request.schema.json",
    "feedback": "feedback.schema.json",
}
ID_PREFIX = "http://rpl-cds.org/schemas/cds-hooks/"


def _load(name):
    with open(SCHEMA_DIR / SCHEMA_FILES[name], encoding="utf-8") as fh:
        return json.load(fh)


SCHEMAS = {name: _load(name) for name in SCHEMA_FILES}
REGISTRY = Registry().with_resources(
    (schema["$id"], Resource.from_contents(schema)) for schema in SCHEMAS.values()
)
FORMAT_CHECKER = Draft202012Validator.FORMAT_CHECKER


def validator(name, definition=None):
    """Validator for a whole schema, or for one of its ``$defs`` entries."""
    schema = SCHEMAS[name]
    if definition is not None:
        assert definition in schema["$defs"], definition
        schema = {"$ref": f"{schema['$id']}#/$defs/{definition}"}
    return Draft202012Validator(schema, registry=REGISTRY, format_checker=FORMAT_CHECKER)


def errors(name, instance, definition=None):
    return sorted(
        validator(name, definition).iter_errors(instance), key=lambda e: list(e.absolute_path)
    )


def assert_valid(name, instance, definition=None):
    errs = errors(name, instance, definition)
    assert not errs, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errs)


def assert_invalid(name, instance, definition=None):
    assert errors(name, instance, definition), f"expected {name} to reject {instance!r}"


# ---------------------------------------------------------------------------
# Examples copied from the CDS Hooks 2.0.1 specification and hook definitions
# ---------------------------------------------------------------------------

# spec-2.0.1.md, line 130
SPEC_DISCOVERY_EXAMPLE = {
    'services': [
        {
            'hook': 'patient-view',
            'title': 'Static CDS Service Example',
            'description': 'An example of a CDS Service that returns a static set of cards',
            'id': 'static-patient-greeter',
            'prefetch': {'patientToGreet': 'Patient/{{context.patientId}}'},
        },
        {
            'hook': 'order-select',
            'title': 'Order Echo CDS Service',
            'description': 'An example of a CDS Service that simply echoes the order(s) being placed',
            'id': 'order-echo',
            'prefetch': {
                'patient': 'Patient/{{context.patientId}}',
                'medications': 'MedicationRequest?patient={{context.patientId}}',
            },
        },
        {
            'hook': 'order-sign',
            'title': 'Pharmacogenomics CDS Service',
            'description': 'An example of a more advanced, precision medicine CDS Service',
            'id': 'pgx-on-order-sign',
            'usageRequirements': 'Note: functionality of this CDS Service is degraded without access to a FHIR Restful API as part of CDS recommendation generation.',
        },
    ],
}

# spec-2.0.1.md, line 198
SPEC_REQUEST_EXAMPLE = {
    'hookInstance': 'd1577c69-dfbe-44ad-ba6d-3e05e953b2ea',
    'fhirServer': 'http://hooks.smarthealthit.org:9080',
    'hook': 'patient-view',
    'fhirAuthorization': {
        'access_token': 'some-opaque-fhir-access-token',
        'token_type': 'Bearer',
        'expires_in': 300,
        'scope': 'user/Patient.read user/Observation.read',
        'subject': 'cds-service4',
    },
    'context': {'userId': 'Practitioner/example', 'patientId': '1288992', 'encounterId': '89284'},
    'prefetch': {
        'patientToGreet': {
            'resourceType': 'Patient',
            'gender': 'male',
            'birthDate': '1925-12-23',
            'id': '1288992',
            'active': True,
        },
    },
}

# spec-2.0.1.md, line 252
SPEC_PREFETCH_TEMPLATE_A1C = {
    'prefetch': {
        'hemoglobin-a1c': 'Observation?patient={{context.patientId}}&code=4548-4&_count=1&sort:desc=date',
    },
}

# spec-2.0.1.md, line 354
SPEC_PREFETCH_TOKEN_CONTEXT_DRAFT_ORDERS = {
    'context': {
        'encounterId': '456',
        'draftOrders': {
            'resourceType': 'Bundle',
            'entry': [
                {
                    'resource': {
                        'resourceType': 'MedicationRequest',
                        'id': '123',
                        'status': 'draft',
                        'intent': 'order',
                        'medicationCodeableConcept': {
                            'coding': [
                                {
                                    'system': 'http://www.nlm.nih.gov/research/umls/rxnorm',
                                    'code': '617993',
                                    'display': 'Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension',
                                },
                            ],
                        },
                        'subject': {'reference': 'Patient/1288992'},
                    },
                },
            ],
        },
    },
}

# spec-2.0.1.md, line 385
SPEC_PREFETCH_TOKEN_CONTEXT_MEDREQ_ID = {
    'context': {
        'medicationRequestId': '123',
        'encounterId': '456',
        'draftOrders': {
            'resourceType': 'Bundle',
            'entry': [
                {
                    'resource': {
                        'resourceType': 'MedicationRequest',
                        'id': '123',
                        'status': 'draft',
                        'intent': 'order',
                        'medicationCodeableConcept': {
                            'coding': [
                                {
                                    'system': 'http://www.nlm.nih.gov/research/umls/rxnorm',
                                    'code': '617993',
                                    'display': 'Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension',
                                },
                            ],
                        },
                        'subject': {'reference': 'Patient/1288992'},
                    },
                },
            ],
        },
    },
}

# spec-2.0.1.md, line 417
SPEC_PREFETCH_TEMPLATES_EXAMPLE = {
    'prefetch': {
        'patient': 'Patient/{{context.patientId}}',
        'hemoglobin-a1c': 'Observation?patient={{context.patientId}}&code=4548-4&_count=1&sort:desc=date',
        'diabetes-type2': 'Condition?patient={{context.patientId}}&code=44054006&category=problem-list-item&status=active',
        'user': 'PractitionerRole?_id={{userPractitionerRoleId}}',
    },
}

# spec-2.0.1.md, line 441
SPEC_PREFETCH_DATA_EXAMPLE = {
    'prefetch': {
        'patient': {
            'resourceType': 'Patient',
            'gender': 'male',
            'birthDate': '1974-12-25',
            '...': '<snipped for brevity>',
        },
        'hemoglobin-a1c': {
            'resourceType': 'Bundle',
            'type': 'searchset',
            'entry': [
                {
                    'resource': {
                        'resourceType': 'Observation',
                        'code': {
                            'coding': [
                                {
                                    'system': 'http://loinc.org',
                                    'code': '4548-4',
                                    'display': 'Hemoglobin A1c',
                                },
                            ],
                        },
                        '...': '<snipped for brevity>',
                    },
                },
            ],
        },
        'user': '123',
    },
}

# spec-2.0.1.md, line 512
SPEC_FHIR_AUTHORIZATION_EXAMPLE = {
    'fhirAuthorization': {
        'access_token': 'some-opaque-fhir-access-token',
        'token_type': 'Bearer',
        'expires_in': 300,
        'scope': 'user/Patient.read user/Observation.read',
        'subject': 'cds-service4',
    },
}

# spec-2.0.1.md, line 553
SPEC_EMPTY_CARDS_RESPONSE = {'cards': []}

# spec-2.0.1.md, line 592
SPEC_SOURCE_EXAMPLE = {
    'source': {
        'label': 'Zika Virus Management',
        'url': 'https://example.com/cdc-zika-virus-mgmt',
        'icon': 'https://example.com/cdc-zika-virus-mgmt/100.png',
        'topic': {
            'system': 'http://example.org/cds-services/fhir/CodeSystem/topics',
            'code': '12345',
            'display': 'Mosquito born virus',
        },
    },
}

# spec-2.0.1.md, line 633
SPEC_ACTION_CREATE_EXAMPLE = {
    'type': 'create',
    'description': 'Create a prescription for Acetaminophen 250 MG',
    'resource': {'resourceType': 'MedicationRequest', 'id': 'medrx001', '...': '<snipped for brevity>'},
}

# spec-2.0.1.md, line 647
SPEC_ACTION_UPDATE_EXAMPLE = {
    'type': 'update',
    'description': 'Update the order to record the appropriateness score',
    'resource': {'resourceType': 'ServiceRequest', 'id': 'procedure-request-1', '...': '<snipped for brevity>'},
}

# spec-2.0.1.md, line 661
SPEC_ACTION_DELETE_EXAMPLE = {
    'type': 'delete',
    'description': 'Remove the inappropriate order',
    'resourceId': 'ServiceRequest/procedure-request-1',
}

# spec-2.0.1.md, line 676
SPEC_OVERRIDE_REASONS_EXAMPLE = {
    'overrideReasons': [
        {
            'code': 'reason-code-provided-by-service',
            'system': 'http://example.org/cds-services/fhir/CodeSystem/override-reasons',
            'display': 'Patient refused',
        },
        {
            'code': '12354',
            'system': 'http://example.org/cds-services/fhir/CodeSystem/override-reasons',
            'display': 'Contraindicated',
        },
    ],
}

# spec-2.0.1.md, line 715
SPEC_SYSTEM_ACTION_EXAMPLE = {
    'cards': [],
    'systemActions': [
        {
            'type': 'update',
            'resource': {
                'resourceType': 'ServiceRequest',
                'id': 'example-MRI-59879846',
                '...': '<snipped for brevity',
            },
        },
    ],
}

# spec-2.0.1.md, line 735
SPEC_RESPONSE_EXAMPLE = {
    'cards': [
        {
            'uuid': '4e0a3a1e-3283-4575-ab82-028d55fe2719',
            'summary': 'Example Card',
            'indicator': 'info',
            'detail': 'This is an example card.',
            'source': {
                'label': 'Static CDS Service Example',
                'url': 'https://example.com',
                'icon': 'https://example.com/img/icon-100px.png',
            },
            'links': [
                {'label': 'Google', 'url': 'https://google.com', 'type': 'absolute'},
                {'label': 'Github', 'url': 'https://github.com', 'type': 'absolute'},
                {
                    'label': 'SMART Example App',
                    'url': 'https://smart.example.com/launch',
                    'type': 'smart',
                    'appContext': '{"session":3456356,"settings":{"module":4235}}',
                },
            ],
        },
        {
            'summary': 'Another card',
            'indicator': 'warning',
            'source': {'label': 'Static CDS Service Example'},
            'overrideReasons': [
                {
                    'code': 'reason-code-provided-by-service',
                    'system': 'http://example.org/cds-services/fhir/CodeSystem/override-reasons',
                    'display': 'Patient refused',
                },
                {
                    'code': '12354',
                    'system': 'http://example.org/cds-services/fhir/CodeSystem/override-reasons',
                    'display': 'Contraindicated',
                },
            ],
        },
    ],
}

# spec-2.0.1.md, line 793
SPEC_RESPONSE_AUTOLAUNCHABLE_EXAMPLE = {
    'cards': [
        {
            'uuid': '4e0a3a1e-3283-4575-ab82-028d55fe2719',
            'summary': 'Lung cancer screening shared decision making',
            'detail': 'Patient is a current smoker with a 20 pack/year history. Consider advising patient to complete lung cancer screening. The Lung Cancer Screening Shared Decision Making App (LCSSDM) has been proven to increase patient followthrough for screening.',
            'source': {
                'label': 'Lung Cancer Screening Shared Decision Making App',
                'url': 'https://example.com/LCS',
                'icon': 'https://example.com/img/icon-100px.png',
            },
            'links': [
                {
                    'label': 'Github',
                    'url': 'https://github.com',
                    'type': 'absolute',
                    'autolaunchable': True,
                },
            ],
        },
    ],
}

# spec-2.0.1.md, line 862
SPEC_FEEDBACK_ACCEPTED_EXAMPLE = {
    'feedback': [
        {
            'card': '4e0a3a1e-3283-4575-ab82-028d55fe2719',
            'outcome': 'accepted',
            'acceptedSuggestions': [{'id': 'e56e1945-20b3-4393-8503-a1a20fd73152'}],
            'outcomeTimestamp': '2021-12-11T10:05:31Z',
        },
    ],
}

# spec-2.0.1.md, line 894
SPEC_FEEDBACK_OVERRIDDEN_EXAMPLE = {
    'feedback': [
        {
            'card': 'f6b95768-b1c8-40dc-8385-bf3504b82ffb',
            'outcome': 'overridden',
            'outcomeTimestamp': '2020-12-11T00:00:00Z',
        },
    ],
}

# spec-2.0.1.md, line 926
SPEC_FEEDBACK_OVERRIDE_REASON_EXAMPLE = {
    'feedback': [
        {
            'card': '9368d37b-283f-44a0-93ea-547cebab93ed',
            'outcome': 'overridden',
            'overrideReason': {
                'reason': {
                    'code': 'd7ecf885',
                    'system': 'https://example.com/cds-hooks/override-reason-system',
                },
                'userComment': 'A comment entered by the clinician.',
            },
            'outcomeTimestamp': '2020-12-11T00:00:00Z',
        },
    ],
}

# spec-2.0.1.md, line 1119
SPEC_REQUEST_EXTENSION_EXAMPLE = {
    'hookInstance': 'd1577c69-dfbe-44ad-ba6d-3e05e953b2ea',
    'fhirServer': 'http://fhir.example.org:9080',
    'hook': 'patient-view',
    'context': {'userId': 'Practitioner/example'},
    'extension': {
        'com.example.timestamp': '2017-11-27T22:13:25Z',
        'com.cds-hooks.sandbox.myextension-practitionerspecialty': 'gastroenterology',
    },
}

# spec-2.0.1.md, line 1136
SPEC_DISCOVERY_EXTENSION_EXAMPLE = {
    'services': [
        {
            'title': 'Example CDS Service Discovery',
            'hook': 'patient-view',
            'id': 'patientview',
            'prefetch': {'patient': 'Patient/{{context.patientId}}'},
            'description': 'clinical decision support for patient view',
            'extension': {
                'com.example.clientConformance': 'http://hooks.example.org/fhir/102/Conformance/patientview',
            },
        },
    ],
}

# spec-2.0.1.md, line 1189
SPEC_PATIENT_VIEW_CONTEXT_EXAMPLE = {'context': {'userId': 'PractitionerRole/123', 'patientId': '1288992'}}

# spec-2.0.1.md, line 1199
SPEC_PREFETCH_PATIENT_TO_GREET = {'prefetch': {'patientToGreet': 'Patient/{{context.patientId}}'}}

# hooks/patient-view.md, line 31
HOOK_PATIENT_VIEW_CONTEXT = {'userId': 'PractitionerRole/123', 'patientId': '1288992'}

# hooks/patient-view.md, line 38
HOOK_PATIENT_VIEW_ENCOUNTER_CONTEXT = {'userId': 'Practitioner/abc', 'patientId': '1288992', 'encounterId': '456'}

# hooks/order-select.md, line 50
HOOK_ORDER_SELECT_R4_CONTEXT = {
    'userId': 'PractitionerRole/123',
    'patientId': '1288992',
    'encounterId': '89284',
    'selections': ['NutritionOrder/pureeddiet-simple', 'MedicationRequest/smart-MedicationRequest-103'],
    'draftOrders': {
        'resourceType': 'Bundle',
        'entry': [
            {
                'resource': {
                    'resourceType': 'NutritionOrder',
                    'id': 'pureeddiet-simple',
                    'identifier': [{'system': 'http://goodhealthhospital.org/nutrition-requests', 'value': '123'}],
                    'status': 'draft',
                    'patient': {'reference': 'Patient/1288992'},
                    'dateTime': '2014-09-17',
                    'orderer': {'reference': 'Practitioner/example', 'display': 'Dr Adam Careful'},
                    'oralDiet': {
                        'type': [
                            {
                                'coding': [
                                    {
                                        'system': 'http://snomed.info/sct',
                                        'code': '226211001',
                                        'display': 'Pureed diet',
                                    },
                                    {
                                        'system': 'http://goodhealthhospital.org/diet-type-codes',
                                        'code': '1010',
                                        'display': 'Pureed diet',
                                    },
                                ],
                                'text': 'Pureed diet',
                            },
                        ],
                        'schedule': [
                            {
                                'repeat': {
                                    'boundsPeriod': {'start': '2015-02-10'},
                                    'frequency': 3,
                                    'period': 1,
                                    'periodUnit': 'd',
                                },
                            },
                        ],
                        'texture': [
                            {
                                'modifier': {
                                    'coding': [
                                        {
                                            'system': 'http://snomed.info/sct',
                                            'code': '228055009',
                                            'display': 'Liquidized food',
                                        },
                                    ],
                                    'text': 'Pureed',
                                },
                            },
                        ],
                        'fluidConsistencyType': [
                            {
                                'coding': [
                                    {
                                        'system': 'http://snomed.info/sct',
                                        'code': '439021000124105',
                                        'display': 'Dietary liquid consistency - nectar thick liquid',
                                    },
                                ],
                                'text': 'Nectar thick liquids',
                            },
                        ],
                    },
                    'supplement': [
                        {
                            'type': {
                                'coding': [
                                    {
                                        'system': 'http://snomed.info/sct',
                                        'code': '442971000124100',
                                        'display': 'Adult high energy formula',
                                    },
                                    {
                                        'system': 'http://goodhealthhospital.org/supplement-type-codes',
                                        'code': '1040',
                                        'display': 'Adult high energy pudding',
                                    },
                                ],
                                'text': 'Adult high energy pudding',
                            },
                            'productName': 'Ensure Pudding 4 oz container',
                            'instruction': 'Ensure Pudding at breakfast, lunch, supper',
                        },
                    ],
                },
            },
            {
                'resource': {
                    'resourceType': 'MedicationRequest',
                    'id': 'smart-MedicationRequest-103',
                    'meta': {'lastUpdated': '2018-04-30T13:25:40.845-04:00'},
                    'text': {
                        'status': 'generated',
                        'div': '<div xmlns="http://www.w3.org/1999/xhtml">Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension (rxnorm: 617993)</div>',
                    },
                    'status': 'draft',
                    'intent': 'order',
                    'medicationCodeableConcept': {
                        'coding': [
                            {
                                'system': 'http://www.nlm.nih.gov/research/umls/rxnorm',
                                'code': '617993',
                                'display': 'Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension',
                            },
                        ],
                        'text': 'Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension',
                    },
                    'subject': {'reference': 'Patient/1288992'},
                    'dosageInstruction': [
                        {
                            'text': '5 mL bid x 10 days',
                            'timing': {
                                'repeat': {
                                    'boundsPeriod': {'start': '2005-01-04'},
                                    'frequency': 2,
                                    'period': 1,
                                    'periodUnit': 'd',
                                },
                            },
                            'doseAndRate': {
                                'doseQuantity': {
                                    'value': 5,
                                    'unit': 'mL',
                                    'system': 'http://unitsofmeasure.org',
                                    'code': 'mL',
                                },
                            },
                        },
                    ],
                    'dispenseRequest': {
                        'numberOfRepeatsAllowed': 1,
                        'quantity': {
                            'value': 1,
                            'unit': 'mL',
                            'system': 'http://unitsofmeasure.org',
                            'code': 'mL',
                        },
                        'expectedSupplyDuration': {
                            'value': 10,
                            'unit': 'days',
                            'system': 'http://unitsofmeasure.org',
                            'code': 'd',
                        },
                    },
                },
            },
        ],
    },
}

# hooks/order-select.md, line 233
HOOK_ORDER_SELECT_STU3_CONTEXT = {
    'userId': 'Practitioner/example',
    'patientId': '1288992',
    'encounterId': '89284',
    'selections': ['NutritionOrder/pureeddiet-simple', 'MedicationRequest/smart-MedicationRequest-103'],
    'draftOrders': {
        'resourceType': 'Bundle',
        'entry': [
            {
                'resource': {
                    'resourceType': 'NutritionOrder',
                    'id': 'pureeddiet-simple',
                    'identifier': [{'system': 'http://goodhealthhospital.org/nutrition-requests', 'value': '123'}],
                    'status': 'draft',
                    'patient': {'reference': 'Patient/1288992'},
                    'dateTime': '2014-09-17',
                    'orderer': {'reference': 'Practitioner/example', 'display': 'Dr Adam Careful'},
                    'oralDiet': {
                        'type': [
                            {
                                'coding': [
                                    {
                                        'system': 'http://snomed.info/sct',
                                        'code': '226211001',
                                        'display': 'Pureed diet',
                                    },
                                    {
                                        'system': 'http://goodhealthhospital.org/diet-type-codes',
                                        'code': '1010',
                                        'display': 'Pureed diet',
                                    },
                                ],
                                'text': 'Pureed diet',
                            },
                        ],
                        'schedule': [
                            {
                                'repeat': {
                                    'boundsPeriod': {'start': '2015-02-10'},
                                    'frequency': 3,
                                    'period': 1,
                                    'periodUnit': 'd',
                                },
                            },
                        ],
                        'texture': [
                            {
                                'modifier': {
                                    'coding': [
                                        {
                                            'system': 'http://snomed.info/sct',
                                            'code': '228055009',
                                            'display': 'Liquidized food',
                                        },
                                    ],
                                    'text': 'Pureed',
                                },
                            },
                        ],
                        'fluidConsistencyType': [
                            {
                                'coding': [
                                    {
                                        'system': 'http://snomed.info/sct',
                                        'code': '439021000124105',
                                        'display': 'Dietary liquid consistency - nectar thick liquid',
                                    },
                                ],
                                'text': 'Nectar thick liquids',
                            },
                        ],
                    },
                    'supplement': [
                        {
                            'type': {
                                'coding': [
                                    {
                                        'system': 'http://snomed.info/sct',
                                        'code': '442971000124100',
                                        'display': 'Adult high energy formula',
                                    },
                                    {
                                        'system': 'http://goodhealthhospital.org/supplement-type-codes',
                                        'code': '1040',
                                        'display': 'Adult high energy pudding',
                                    },
                                ],
                                'text': 'Adult high energy pudding',
                            },
                            'productName': 'Ensure Pudding 4 oz container',
                            'instruction': 'Ensure Pudding at breakfast, lunch, supper',
                        },
                    ],
                },
            },
            {
                'resource': {
                    'resourceType': 'MedicationRequest',
                    'id': 'smart-MedicationRequest-103',
                    'meta': {'lastUpdated': '2018-04-30T13:25:40.845-04:00'},
                    'text': {
                        'status': 'generated',
                        'div': '<div xmlns="http://www.w3.org/1999/xhtml">Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension (rxnorm: 617993)</div>',
                    },
                    'status': 'draft',
                    'intent': 'order',
                    'medicationCodeableConcept': {
                        'coding': [
                            {
                                'system': 'http://www.nlm.nih.gov/research/umls/rxnorm',
                                'code': '617993',
                                'display': 'Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension',
                            },
                        ],
                        'text': 'Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension',
                    },
                    'subject': {'reference': 'Patient/1288992'},
                    'dosageInstruction': [
                        {
                            'text': '5 mL bid x 10 days',
                            'timing': {
                                'repeat': {
                                    'boundsPeriod': {'start': '2005-01-04'},
                                    'frequency': 2,
                                    'period': 1,
                                    'periodUnit': 'd',
                                },
                            },
                            'doseQuantity': {
                                'value': 5,
                                'unit': 'mL',
                                'system': 'http://unitsofmeasure.org',
                                'code': 'mL',
                            },
                        },
                    ],
                    'dispenseRequest': {
                        'numberOfRepeatsAllowed': 1,
                        'quantity': {
                            'value': 1,
                            'unit': 'mL',
                            'system': 'http://unitsofmeasure.org',
                            'code': 'mL',
                        },
                        'expectedSupplyDuration': {
                            'value': 10,
                            'unit': 'days',
                            'system': 'http://unitsofmeasure.org',
                            'code': 'd',
                        },
                    },
                },
            },
        ],
    },
}

# hooks/order-select.md, line 414
HOOK_ORDER_SELECT_DSTU2_CONTEXT = {
    'userId': 'Practitioner/example',
    'patientId': '1288992',
    'encounterId': '89284',
    'selections': ['NutritionOrder/nest-patient-1-NUTR1', 'MedicationOrder/smart-MedicationOrder-103'],
    'draftOrders': {
        'resourceType': 'Bundle',
        'entry': [
            {
                'resource': {
                    'resourceType': 'NutritionOrder',
                    'id': 'nest-patient-1-NUTR1',
                    'patient': {'reference': 'Patient/1288992'},
                    'orderer': {'display': 'Dr Adam Careful'},
                    'identifier': [{'system': 'http://goodhealthhospital.org/nutrition-orders', 'value': '123'}],
                    'dateTime': '2014-09-17',
                    'status': 'draft',
                    'oralDiet': {
                        'type': [
                            {
                                'coding': [
                                    {
                                        'system': 'http://snomed.info/sct',
                                        'code': '435801000124108',
                                        'display': 'Texture modified diet',
                                    },
                                    {
                                        'system': 'http://goodhealthhospital.org/diet-type-codes',
                                        'code': '1010',
                                        'display': 'Texture modified diet',
                                    },
                                ],
                                'text': 'Texture modified diet',
                            },
                        ],
                        'schedule': [
                            {
                                'repeat': {
                                    'boundsPeriod': {'start': '2015-02-10'},
                                    'frequency': 3,
                                    'period': 1,
                                    'periodUnits': 'd',
                                },
                            },
                        ],
                        'texture': [
                            {
                                'modifier': {
                                    'coding': [
                                        {
                                            'system': 'http://snomed.info/sct',
                                            'code': '228049004',
                                            'display': 'Chopped food',
                                        },
                                    ],
                                    'text': 'Regular, Chopped Meat',
                                },
                                'foodType': {
                                    'coding': [
                                        {
                                            'system': 'http://snomed.info/sct',
                                            'code': '22836000',
                                            'display': 'Vegetable',
                                        },
                                    ],
                                    'text': 'Regular, Chopped Meat',
                                },
                            },
                        ],
                    },
                },
            },
            {
                'resource': {
                    'resourceType': 'MedicationOrder',
                    'id': 'smart-MedicationOrder-103',
                    'status': 'draft',
                    'patient': {'reference': 'Patient/1288992'},
                    'medicationCodeableConcept': {
                        'coding': [
                            {
                                'system': 'http://www.nlm.nih.gov/research/umls/rxnorm',
                                'code': '617993',
                                'display': 'Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension',
                            },
                        ],
                        'text': 'Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension',
                    },
                    'dosageInstruction': [
                        {
                            'text': '5 mL bid x 10 days',
                            'timing': {
                                'repeat': {
                                    'boundsPeriod': {'start': '2005-01-04'},
                                    'frequency': 2,
                                    'period': 1,
                                    'periodUnits': 'd',
                                },
                            },
                            'doseQuantity': {
                                'value': 5,
                                'unit': 'mL',
                                'system': 'http://unitsofmeasure.org',
                                'code': 'mL',
                            },
                        },
                    ],
                    'dispenseRequest': {
                        'numberOfRepeatsAllowed': 1,
                        'quantity': {
                            'value': 1,
                            'unit': 'mL',
                            'system': 'http://unitsofmeasure.org',
                            'code': 'mL',
                        },
                        'expectedSupplyDuration': {
                            'value': 10,
                            'unit': 'days',
                            'system': 'http://unitsofmeasure.org',
                            'code': 'd',
                        },
                    },
                },
            },
        ],
    },
}

# hooks/order-sign.md, line 52
HOOK_ORDER_SIGN_R4_CONTEXT = {
    'userId': 'PractitionerRole/123',
    'patientId': '1288992',
    'encounterId': '89284',
    'draftOrders': {
        'resourceType': 'Bundle',
        'entry': [
            {
                'resource': {
                    'resourceType': 'NutritionOrder',
                    'id': 'pureeddiet-simple',
                    'identifier': [{'system': 'http://goodhealthhospital.org/nutrition-requests', 'value': '123'}],
                    'status': 'draft',
                    'patient': {'reference': 'Patient/1288992'},
                    'dateTime': '2014-09-17',
                    'orderer': {'reference': 'Practitioner/example', 'display': 'Dr Adam Careful'},
                    'oralDiet': {
                        'type': [
                            {
                                'coding': [
                                    {
                                        'system': 'http://snomed.info/sct',
                                        'code': '226211001',
                                        'display': 'Pureed diet',
                                    },
                                    {
                                        'system': 'http://goodhealthhospital.org/diet-type-codes',
                                        'code': '1010',
                                        'display': 'Pureed diet',
                                    },
                                ],
                                'text': 'Pureed diet',
                            },
                        ],
                        'schedule': [
                            {
                                'repeat': {
                                    'boundsPeriod': {'start': '2015-02-10'},
                                    'frequency': 3,
                                    'period': 1,
                                    'periodUnit': 'd',
                                },
                            },
                        ],
                        'texture': [
                            {
                                'modifier': {
                                    'coding': [
                                        {
                                            'system': 'http://snomed.info/sct',
                                            'code': '228055009',
                                            'display': 'Liquidized food',
                                        },
                                    ],
                                    'text': 'Pureed',
                                },
                            },
                        ],
                        'fluidConsistencyType': [
                            {
                                'coding': [
                                    {
                                        'system': 'http://snomed.info/sct',
                                        'code': '439021000124105',
                                        'display': 'Dietary liquid consistency - nectar thick liquid',
                                    },
                                ],
                                'text': 'Nectar thick liquids',
                            },
                        ],
                    },
                    'supplement': [
                        {
                            'type': {
                                'coding': [
                                    {
                                        'system': 'http://snomed.info/sct',
                                        'code': '442971000124100',
                                        'display': 'Adult high energy formula',
                                    },
                                    {
                                        'system': 'http://goodhealthhospital.org/supplement-type-codes',
                                        'code': '1040',
                                        'display': 'Adult high energy pudding',
                                    },
                                ],
                                'text': 'Adult high energy pudding',
                            },
                            'productName': 'Ensure Pudding 4 oz container',
                            'instruction': 'Ensure Pudding at breakfast, lunch, supper',
                        },
                    ],
                },
            },
            {
                'resource': {
                    'resourceType': 'MedicationRequest',
                    'id': 'smart-MedicationRequest-103',
                    'meta': {'lastUpdated': '2018-04-30T13:25:40.845-04:00'},
                    'text': {
                        'status': 'generated',
                        'div': '<div xmlns="http://www.w3.org/1999/xhtml">Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension (rxnorm: 617993)</div>',
                    },
                    'status': 'draft',
                    'intent': 'order',
                    'medicationCodeableConcept': {
                        'coding': [
                            {
                                'system': 'http://www.nlm.nih.gov/research/umls/rxnorm',
                                'code': '617993',
                                'display': 'Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension',
                            },
                        ],
                        'text': 'Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension',
                    },
                    'subject': {'reference': 'Patient/1288992'},
                    'dosageInstruction': [
                        {
                            'text': '5 mL bid x 10 days',
                            'timing': {
                                'repeat': {
                                    'boundsPeriod': {'start': '2005-01-04'},
                                    'frequency': 2,
                                    'period': 1,
                                    'periodUnit': 'd',
                                },
                            },
                            'doseQuantity': {
                                'value': 5,
                                'unit': 'mL',
                                'system': 'http://unitsofmeasure.org',
                                'code': 'mL',
                            },
                        },
                    ],
                    'dispenseRequest': {
                        'numberOfRepeatsAllowed': 1,
                        'quantity': {
                            'value': 1,
                            'unit': 'mL',
                            'system': 'http://unitsofmeasure.org',
                            'code': 'mL',
                        },
                        'expectedSupplyDuration': {
                            'value': 10,
                            'unit': 'days',
                            'system': 'http://unitsofmeasure.org',
                            'code': 'd',
                        },
                    },
                },
            },
        ],
    },
}

# hooks/order-sign.md, line 232
HOOK_ORDER_SIGN_STU3_CONTEXT = {
    'userId': 'Practitioner/example',
    'patientId': '1288992',
    'encounterId': '89284',
    'draftOrders': {
        'resourceType': 'Bundle',
        'entry': [
            {
                'resource': {
                    'resourceType': 'NutritionOrder',
                    'id': 'pureeddiet-simple',
                    'identifier': [{'system': 'http://goodhealthhospital.org/nutrition-requests', 'value': '123'}],
                    'status': 'draft',
                    'patient': {'reference': 'Patient/1288992'},
                    'dateTime': '2014-09-17',
                    'orderer': {'reference': 'Practitioner/example', 'display': 'Dr Adam Careful'},
                    'oralDiet': {
                        'type': [
                            {
                                'coding': [
                                    {
                                        'system': 'http://snomed.info/sct',
                                        'code': '226211001',
                                        'display': 'Pureed diet',
                                    },
                                    {
                                        'system': 'http://goodhealthhospital.org/diet-type-codes',
                                        'code': '1010',
                                        'display': 'Pureed diet',
                                    },
                                ],
                                'text': 'Pureed diet',
                            },
                        ],
                        'schedule': [
                            {
                                'repeat': {
                                    'boundsPeriod': {'start': '2015-02-10'},
                                    'frequency': 3,
                                    'period': 1,
                                    'periodUnit': 'd',
                                },
                            },
                        ],
                        'texture': [
                            {
                                'modifier': {
                                    'coding': [
                                        {
                                            'system': 'http://snomed.info/sct',
                                            'code': '228055009',
                                            'display': 'Liquidized food',
                                        },
                                    ],
                                    'text': 'Pureed',
                                },
                            },
                        ],
                        'fluidConsistencyType': [
                            {
                                'coding': [
                                    {
                                        'system': 'http://snomed.info/sct',
                                        'code': '439021000124105',
                                        'display': 'Dietary liquid consistency - nectar thick liquid',
                                    },
                                ],
                                'text': 'Nectar thick liquids',
                            },
                        ],
                    },
                    'supplement': [
                        {
                            'type': {
                                'coding': [
                                    {
                                        'system': 'http://snomed.info/sct',
                                        'code': '442971000124100',
                                        'display': 'Adult high energy formula',
                                    },
                                    {
                                        'system': 'http://goodhealthhospital.org/supplement-type-codes',
                                        'code': '1040',
                                        'display': 'Adult high energy pudding',
                                    },
                                ],
                                'text': 'Adult high energy pudding',
                            },
                            'productName': 'Ensure Pudding 4 oz container',
                            'instruction': 'Ensure Pudding at breakfast, lunch, supper',
                        },
                    ],
                },
            },
            {
                'resource': {
                    'resourceType': 'MedicationRequest',
                    'id': 'smart-MedicationRequest-103',
                    'meta': {'lastUpdated': '2018-04-30T13:25:40.845-04:00'},
                    'text': {
                        'status': 'generated',
                        'div': '<div xmlns="http://www.w3.org/1999/xhtml">Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension (rxnorm: 617993)</div>',
                    },
                    'status': 'draft',
                    'intent': 'order',
                    'medicationCodeableConcept': {
                        'coding': [
                            {
                                'system': 'http://www.nlm.nih.gov/research/umls/rxnorm',
                                'code': '617993',
                                'display': 'Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension',
                            },
                        ],
                        'text': 'Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension',
                    },
                    'subject': {'reference': 'Patient/1288992'},
                    'dosageInstruction': [
                        {
                            'text': '5 mL bid x 10 days',
                            'timing': {
                                'repeat': {
                                    'boundsPeriod': {'start': '2005-01-04'},
                                    'frequency': 2,
                                    'period': 1,
                                    'periodUnit': 'd',
                                },
                            },
                            'doseAndRate': {
                                'doseQuantity': {
                                    'value': 5,
                                    'unit': 'mL',
                                    'system': 'http://unitsofmeasure.org',
                                    'code': 'mL',
                                },
                            },
                        },
                    ],
                    'dispenseRequest': {
                        'numberOfRepeatsAllowed': 1,
                        'quantity': {
                            'value': 1,
                            'unit': 'mL',
                            'system': 'http://unitsofmeasure.org',
                            'code': 'mL',
                        },
                        'expectedSupplyDuration': {
                            'value': 10,
                            'unit': 'days',
                            'system': 'http://unitsofmeasure.org',
                            'code': 'd',
                        },
                    },
                },
            },
        ],
    },
}

# hooks/order-sign.md, line 414
HOOK_ORDER_SIGN_DSTU2_CONTEXT = {
    'userId': 'Practitioner/abc',
    'patientId': '1288992',
    'encounterId': '89284',
    'draftOrders': {
        'resourceType': 'Bundle',
        'entry': [
            {
                'resource': {
                    'resourceType': 'NutritionOrder',
                    'id': 'nest-patient-1-NUTR1',
                    'patient': {'reference': 'Patient/1288992'},
                    'orderer': {'display': 'Dr Adam Careful'},
                    'identifier': [{'system': 'http://goodhealthhospital.org/nutrition-orders', 'value': '123'}],
                    'dateTime': '2014-09-17',
                    'status': 'draft',
                    'oralDiet': {
                        'type': [
                            {
                                'coding': [
                                    {
                                        'system': 'http://snomed.info/sct',
                                        'code': '435801000124108',
                                        'display': 'Texture modified diet',
                                    },
                                    {
                                        'system': 'http://goodhealthhospital.org/diet-type-codes',
                                        'code': '1010',
                                        'display': 'Texture modified diet',
                                    },
                                ],
                                'text': 'Texture modified diet',
                            },
                        ],
                        'schedule': [
                            {
                                'repeat': {
                                    'boundsPeriod': {'start': '2015-02-10'},
                                    'frequency': 3,
                                    'period': 1,
                                    'periodUnits': 'd',
                                },
                            },
                        ],
                        'texture': [
                            {
                                'modifier': {
                                    'coding': [
                                        {
                                            'system': 'http://snomed.info/sct',
                                            'code': '228049004',
                                            'display': 'Chopped food',
                                        },
                                    ],
                                    'text': 'Regular, Chopped Meat',
                                },
                                'foodType': {
                                    'coding': [
                                        {
                                            'system': 'http://snomed.info/sct',
                                            'code': '22836000',
                                            'display': 'Vegetable',
                                        },
                                    ],
                                    'text': 'Regular, Chopped Meat',
                                },
                            },
                        ],
                    },
                },
            },
            {
                'resource': {
                    'resourceType': 'MedicationOrder',
                    'id': 'smart-MedicationOrder-103',
                    'status': 'draft',
                    'patient': {'reference': 'Patient/1288992'},
                    'medicationCodeableConcept': {
                        'coding': [
                            {
                                'system': 'http://www.nlm.nih.gov/research/umls/rxnorm',
                                'code': '617993',
                                'display': 'Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension',
                            },
                        ],
                        'text': 'Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension',
                    },
                    'dosageInstruction': [
                        {
                            'text': '5 mL bid x 10 days',
                            'timing': {
                                'repeat': {
                                    'boundsPeriod': {'start': '2005-01-04'},
                                    'frequency': 2,
                                    'period': 1,
                                    'periodUnits': 'd',
                                },
                            },
                            'doseQuantity': {
                                'value': 5,
                                'unit': 'mL',
                                'system': 'http://unitsofmeasure.org',
                                'code': 'mL',
                            },
                        },
                    ],
                    'dispenseRequest': {
                        'numberOfRepeatsAllowed': 1,
                        'quantity': {
                            'value': 1,
                            'unit': 'mL',
                            'system': 'http://unitsofmeasure.org',
                            'code': 'mL',
                        },
                        'expectedSupplyDuration': {
                            'value': 10,
                            'unit': 'days',
                            'system': 'http://unitsofmeasure.org',
                            'code': 'd',
                        },
                    },
                },
            },
        ],
    },
}

# ---------------------------------------------------------------------------
# 1. the schemas themselves
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_schema_is_valid_draft_2020_12(name):
    schema = SCHEMAS[name]
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == ID_PREFIX + SCHEMA_FILES[name]
    assert schema["title"].strip()
    assert schema["description"].strip()


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_all_refs_resolve(name):
    """Every local $ref points at an existing $defs entry."""

    def refs(node):
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in refs(SCHEMAS[name]):
        assert ref.startswith("#/$defs/"), ref
        assert ref.split("/")[-1] in SCHEMAS[name]["$defs"], ref


# ---------------------------------------------------------------------------
# 2. spec examples that must validate
# ---------------------------------------------------------------------------


def _request(hook, context, **extra):
    body = {"hook": hook, "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea", "context": context}
    body.update(extra)
    return body


POSITIVE = [
    # discovery
    ("discovery", None, SPEC_DISCOVERY_EXAMPLE),
    ("discovery", None, SPEC_DISCOVERY_EXTENSION_EXAMPLE),
    ("discovery", "prefetch", SPEC_PREFETCH_TEMPLATE_A1C["prefetch"]),
    ("discovery", "prefetch", SPEC_PREFETCH_TEMPLATES_EXAMPLE["prefetch"]),
    ("discovery", "prefetch", SPEC_PREFETCH_PATIENT_TO_GREET["prefetch"]),
    # request
    ("request", None, SPEC_REQUEST_EXAMPLE),
    ("request", "fhirAuthorization", SPEC_FHIR_AUTHORIZATION_EXAMPLE["fhirAuthorization"]),
    ("request", "draftOrders", SPEC_PREFETCH_TOKEN_CONTEXT_DRAFT_ORDERS["context"]["draftOrders"]),
    ("request", "draftOrders", SPEC_PREFETCH_TOKEN_CONTEXT_MEDREQ_ID["context"]["draftOrders"]),
    ("request", "patientViewContext", SPEC_PATIENT_VIEW_CONTEXT_EXAMPLE["context"]),
    ("request", "patientViewContext", HOOK_PATIENT_VIEW_CONTEXT),
    ("request", "patientViewContext", HOOK_PATIENT_VIEW_ENCOUNTER_CONTEXT),
    ("request", "orderSelectContext", HOOK_ORDER_SELECT_R4_CONTEXT),
    ("request", "orderSelectContext", HOOK_ORDER_SELECT_STU3_CONTEXT),
    ("request", "orderSelectContext", HOOK_ORDER_SELECT_DSTU2_CONTEXT),
    ("request", "orderSignContext", HOOK_ORDER_SIGN_R4_CONTEXT),
    ("request", "orderSignContext", HOOK_ORDER_SIGN_STU3_CONTEXT),
    ("request", "orderSignContext", HOOK_ORDER_SIGN_DSTU2_CONTEXT),
    ("request", None, _request("patient-view", SPEC_PATIENT_VIEW_CONTEXT_EXAMPLE["context"])),
    ("request", None, _request("patient-view", HOOK_PATIENT_VIEW_CONTEXT)),
    ("request", None, _request("patient-view", HOOK_PATIENT_VIEW_ENCOUNTER_CONTEXT)),
    ("request", None, _request("order-select", HOOK_ORDER_SELECT_R4_CONTEXT)),
    ("request", None, _request("order-select", HOOK_ORDER_SELECT_STU3_CONTEXT)),
    ("request", None, _request("order-select", HOOK_ORDER_SELECT_DSTU2_CONTEXT)),
    ("request", None, _request("order-sign", HOOK_ORDER_SIGN_R4_CONTEXT)),
    ("request", None, _request("order-sign", HOOK_ORDER_SIGN_STU3_CONTEXT)),
    ("request", None, _request("order-sign", HOOK_ORDER_SIGN_DSTU2_CONTEXT)),
    # response
    ("response", None, SPEC_EMPTY_CARDS_RESPONSE),
    ("response", None, SPEC_RESPONSE_EXAMPLE),
    ("response", "source", SPEC_SOURCE_EXAMPLE["source"]),
    ("response", "action", SPEC_ACTION_CREATE_EXAMPLE),
    ("response", "action", SPEC_ACTION_UPDATE_EXAMPLE),
    ("response", "action", SPEC_ACTION_DELETE_EXAMPLE),
    *[("response", "overrideReasonCoding", c) for c in SPEC_OVERRIDE_REASONS_EXAMPLE["overrideReasons"]],
    # feedback
    ("feedback", None, SPEC_FEEDBACK_ACCEPTED_EXAMPLE),
    ("feedback", None, SPEC_FEEDBACK_OVERRIDDEN_EXAMPLE),
    ("feedback", None, SPEC_FEEDBACK_OVERRIDE_REASON_EXAMPLE),
]


@pytest.mark.parametrize(
    "name,definition,instance",
    POSITIVE,
    ids=[f"{n}-{d or 'root'}-{i}" for i, (n, d, _) in enumerate(POSITIVE)],
)
def test_spec_example_is_valid(name, definition, instance):
    assert_valid(name, instance, definition)


def test_override_reasons_example_inside_a_card():
    card = {
        "summary": "Example",
        "indicator": "info",
        "source": {"label": "Example"},
        **SPEC_OVERRIDE_REASONS_EXAMPLE,
    }
    assert_valid("response", {"cards": [card]})


def test_spec_actions_inside_a_suggestion_and_as_system_actions():
    actions = [SPEC_ACTION_DELETE_EXAMPLE, SPEC_ACTION_CREATE_EXAMPLE, SPEC_ACTION_UPDATE_EXAMPLE]
    card = {
        "summary": "Example",
        "indicator": "warning",
        "source": SPEC_SOURCE_EXAMPLE["source"],
        "selectionBehavior": "at-most-one",
        "suggestions": [{"label": "Do it", "uuid": "e56e1945-20b3-4393-8503-a1a20fd73152", "actions": actions}],
    }
    assert_valid("response", {"cards": [card], "systemActions": actions})


def test_unknown_hook_context_is_not_constrained():
    # the hook-definition template example (a made-up hook) passes untouched
    context = {
        "someField": "foo",
        "anotherField": 123,
        "someObject": {"color": "red", "version": 1},
        "moreObjects": [],
    }
    assert_valid("request", _request("org.example.patient-transmogrify", context))
    assert_valid("request", _request("encounter-start", {}))


# ---------------------------------------------------------------------------
# 3. spec examples that contradict the spec's normative tables
# ---------------------------------------------------------------------------
#
# Each entry: (schema, example, path of the single expected error, keyword, repair).
# The example must fail exactly there and validate once repaired.


def _add_indicator(doc):
    doc["cards"][0]["indicator"] = "info"


def _add_description(doc):
    doc["systemActions"][0]["description"] = "Update the order"


def _drop_string_prefetch(doc):
    # "user": "123" -- a prefetch value must be a FHIR resource or null
    del doc["prefetch"]["user"]


def _add_patient_id(doc):
    doc["context"]["patientId"] = "1288992"


SPEC_DEFECTS = [
    # Card.indicator is REQUIRED in the Card attribute table; the autolaunchable example omits it.
    ("response", SPEC_RESPONSE_AUTOLAUNCHABLE_EXAMPLE, ["cards", 0], "required", _add_indicator),
    # Action.description is REQUIRED in the Action table; the System Action example omits it.
    ("response", SPEC_SYSTEM_ACTION_EXAMPLE, ["systemActions", 0], "required", _add_description),
    # prefetch values are FHIR resources (or null); the prefetch-data example sends "user": "123".
    ("request", None, ["prefetch", "user"], "oneOf", _drop_string_prefetch),
    # patient-view requires context.patientId; the Extensions request example omits it.
    ("request", SPEC_REQUEST_EXTENSION_EXAMPLE, ["context"], "required", _add_patient_id),
]


def _prefetch_data_request():
    # the "Example prefetch data" fragment wrapped in a minimal patient-view request
    return _request("patient-view", HOOK_PATIENT_VIEW_CONTEXT, **SPEC_PREFETCH_DATA_EXAMPLE)


@pytest.mark.parametrize(
    "name,example,path,keyword,repair",
    SPEC_DEFECTS,
    ids=["autolaunchable-no-indicator", "system-action-no-description", "prefetch-string", "request-extension-no-patientId"],
)
def test_known_spec_example_defects(name, example, path, keyword, repair):
    doc = copy.deepcopy(example if example is not None else _prefetch_data_request())
    errs = errors(name, doc)
    assert [(list(e.absolute_path), e.validator) for e in errs] == [(path, keyword)]
    repair(doc)
    assert_valid(name, doc)


# ---------------------------------------------------------------------------
# 4. negative cases
# ---------------------------------------------------------------------------

FULL_CARD = {
    "uuid": "4e0a3a1e-3283-4575-ab82-028d55fe2719",
    "summary": "Consider antiphospholipid antibody testing",
    "detail": "**Two or more** pregnancy losses.",
    "indicator": "warning",
    "source": {
        "label": "ESHRE RPL guideline 2022",
        "url": "https://www.eshre.eu/Guidelines-and-Legal/Guidelines/Recurrent-pregnancy-loss",
        "icon": "https://example.org/icon-100.png",
        "topic": {"system": "http://example.org/topics", "code": "rpl"},
        "extension": {"org.example.version": "1.0"},
    },
    "suggestions": [
        {
            "label": "Order lupus anticoagulant",
            "uuid": "e56e1945-20b3-4393-8503-a1a20fd73152",
            "isRecommended": True,
            "actions": [
                {
                    "type": "create",
                    "description": "Create a ServiceRequest",
                    "resource": {"resourceType": "ServiceRequest", "status": "draft", "intent": "proposal"},
                },
                {
                    "type": "delete",
                    "description": "Remove the duplicate order",
                    "resourceId": "ServiceRequest/dup-1",
                },
            ],
        },
        {"label": "Do nothing", "isRecommended": False},
    ],
    "selectionBehavior": "at-most-one",
    "overrideReasons": [
        {"system": "http://example.org/override", "code": "done-elsewhere", "display": "Already done elsewhere"}
    ],
    "links": [
        {"label": "Guideline", "url": "https://example.org/guideline", "type": "absolute"},
        {"label": "App", "url": "https://smart.example.org/launch", "type": "smart", "appContext": "{\"a\":1}"},
    ],
    "extension": {"org.example.rule": "rpl-aps-1"},
}
FULL_RESPONSE = {
    "cards": [FULL_CARD],
    "systemActions": [
        {
            "type": "update",
            "description": "Record assessment",
            "resource": {"resourceType": "Task", "id": "t1", "status": "completed"},
        }
    ],
    "extension": {"org.example.trace": "abc"},
}
ORDER_SELECT_REQUEST = _request(
    "order-select",
    HOOK_ORDER_SELECT_R4_CONTEXT,
    fhirServer="https://ehr.example.org/fhir",
    fhirAuthorization={
        "access_token": "tok",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "rpl-cds",
        "patient": "1288992",
    },
    prefetch={"patient": {"resourceType": "Patient", "id": "1288992"}, "conditions": None},
)


def test_negative_bases_are_valid():
    assert_valid("response", FULL_RESPONSE)
    assert_valid("request", ORDER_SELECT_REQUEST)
    assert_valid("feedback", SPEC_FEEDBACK_ACCEPTED_EXAMPLE)
    assert_valid("discovery", SPEC_DISCOVERY_EXAMPLE)


def _set(doc, path, value):
    *parents, last = path
    for key in parents:
        doc = doc[key]
    doc[last] = value


def _del(doc, path):
    *parents, last = path
    for key in parents:
        doc = doc[key]
    del doc[last]


_DELETE = object()
C = ["cards", 0]  # path prefix of the first card
A = C + ["suggestions", 0, "actions"]

# (id, schema, base document, [(path, new value | _DELETE), ...])
NEGATIVE = [
    # response / card
    ("missing-summary", "response", FULL_RESPONSE, [(C + ["summary"], _DELETE)]),
    ("summary-140-chars", "response", FULL_RESPONSE, [(C + ["summary"], "x" * 140)]),
    ("summary-empty", "response", FULL_RESPONSE, [(C + ["summary"], "")]),
    ("bad-indicator", "response", FULL_RESPONSE, [(C + ["indicator"], "urgent")]),
    ("missing-indicator", "response", FULL_RESPONSE, [(C + ["indicator"], _DELETE)]),
    ("missing-source", "response", FULL_RESPONSE, [(C + ["source"], _DELETE)]),
    ("source-without-label", "response", FULL_RESPONSE, [(C + ["source", "label"], _DELETE)]),
    ("source-relative-url", "response", FULL_RESPONSE, [(C + ["source", "url"], "/guideline")]),
    ("topic-without-system", "response", FULL_RESPONSE, [(C + ["source", "topic", "system"], _DELETE)]),
    ("suggestions-without-selectionBehavior", "response", FULL_RESPONSE, [(C + ["selectionBehavior"], _DELETE)]),
    ("bad-selectionBehavior", "response", FULL_RESPONSE, [(C + ["selectionBehavior"], "all")]),
    (
        "two-recommended-with-at-most-one",
        "response",
        FULL_RESPONSE,
        [(C + ["suggestions", 1, "isRecommended"], True)],
    ),
    ("suggestion-without-label", "response", FULL_RESPONSE, [(C + ["suggestions", 0, "label"], _DELETE)]),
    ("overrideReason-without-display", "response", FULL_RESPONSE, [(C + ["overrideReasons", 0, "display"], _DELETE)]),
    ("overrideReason-without-code", "response", FULL_RESPONSE, [(C + ["overrideReasons", 0, "code"], _DELETE)]),
    ("null-field", "response", FULL_RESPONSE, [(C + ["detail"], None)]),
    ("null-uuid", "response", FULL_RESPONSE, [(C + ["uuid"], None)]),
    ("null-inside-resource", "response", FULL_RESPONSE, [(A + [0, "resource", "status"], None)]),
    ("empty-string-inside-resource", "response", FULL_RESPONSE, [(A + [0, "resource", "status"], "")]),
    ("empty-detail", "response", FULL_RESPONSE, [(C + ["detail"], "")]),
    ("empty-optional-array-links", "response", FULL_RESPONSE, [(C + ["links"], [])]),
    ("empty-optional-array-overrideReasons", "response", FULL_RESPONSE, [(C + ["overrideReasons"], [])]),
    ("empty-optional-array-suggestions", "response", FULL_RESPONSE, [(C + ["suggestions"], [])]),
    ("empty-optional-array-actions", "response", FULL_RESPONSE, [(A, [])]),
    ("empty-optional-array-systemActions", "response", FULL_RESPONSE, [(["systemActions"], [])]),
    ("empty-extension", "response", FULL_RESPONSE, [(C + ["extension"], {})]),
    ("extension-not-object", "response", FULL_RESPONSE, [(C + ["extension"], "x")]),
    ("unknown-card-property", "response", FULL_RESPONSE, [(C + ["sumary"], "typo")]),
    ("unknown-top-level-property", "response", FULL_RESPONSE, [(["card"], [])]),
    ("delete-without-resourceId", "response", FULL_RESPONSE, [(A + [1, "resourceId"], _DELETE)]),
    (
        "delete-with-resource",
        "response",
        FULL_RESPONSE,
        [(A + [1, "resource"], {"resourceType": "ServiceRequest", "id": "dup-1"})],
    ),
    ("delete-absolute-resourceId", "response", FULL_RESPONSE, [(A + [1, "resourceId"], "https://x/ServiceRequest/1")]),
    ("create-without-resource", "response", FULL_RESPONSE, [(A + [0, "resource"], _DELETE)]),
    ("resource-without-resourceType", "response", FULL_RESPONSE, [(A + [0, "resource", "resourceType"], _DELETE)]),
    ("update-without-resource", "response", FULL_RESPONSE, [(["systemActions", 0, "resource"], _DELETE)]),
    ("action-without-description", "response", FULL_RESPONSE, [(A + [0, "description"], _DELETE)]),
    ("bad-action-type", "response", FULL_RESPONSE, [(A + [0, "type"], "replace")]),
    ("link-without-type", "response", FULL_RESPONSE, [(C + ["links", 0, "type"], _DELETE)]),
    ("link-bad-type", "response", FULL_RESPONSE, [(C + ["links", 0, "type"], "relative")]),
    ("appContext-on-absolute-link", "response", FULL_RESPONSE, [(C + ["links", 0, "appContext"], "x")]),
    ("autolaunchable-not-boolean", "response", FULL_RESPONSE, [(C + ["links", 0, "autolaunchable"], "true")]),
    ("cards-missing", "response", FULL_RESPONSE, [(["cards"], _DELETE)]),
    # request
    ("order-select-without-selections", "request", ORDER_SELECT_REQUEST, [(["context", "selections"], _DELETE)]),
    ("order-select-empty-selections", "request", ORDER_SELECT_REQUEST, [(["context", "selections"], [])]),
    ("order-select-selection-not-reference", "request", ORDER_SELECT_REQUEST, [(["context", "selections"], ["103"])]),
    ("order-select-without-draftOrders", "request", ORDER_SELECT_REQUEST, [(["context", "draftOrders"], _DELETE)]),
    (
        "order-select-draftOrders-not-bundle",
        "request",
        ORDER_SELECT_REQUEST,
        [(["context", "draftOrders"], {"resourceType": "MedicationRequest"})],
    ),
    ("order-select-patient-user", "request", ORDER_SELECT_REQUEST, [(["context", "userId"], "Patient/1288992")]),
    ("order-select-without-patientId", "request", ORDER_SELECT_REQUEST, [(["context", "patientId"], _DELETE)]),
    ("order-sign-without-draftOrders", "request", ORDER_SELECT_REQUEST, [(["hook"], "order-sign"), (["context", "draftOrders"], _DELETE)]),
    ("patient-view-device-user", "request", SPEC_REQUEST_EXAMPLE, [(["context", "userId"], "Device/1")]),
    ("patient-view-bare-userId", "request", SPEC_REQUEST_EXAMPLE, [(["context", "userId"], "example")]),
    ("patient-view-without-patientId", "request", SPEC_REQUEST_EXAMPLE, [(["context", "patientId"], _DELETE)]),
    ("patient-view-null-encounterId", "request", SPEC_REQUEST_EXAMPLE, [(["context", "encounterId"], None)]),
    ("missing-hookInstance", "request", SPEC_REQUEST_EXAMPLE, [(["hookInstance"], _DELETE)]),
    ("hookInstance-not-uuid", "request", SPEC_REQUEST_EXAMPLE, [(["hookInstance"], "12345")]),
    ("missing-context", "request", SPEC_REQUEST_EXAMPLE, [(["context"], _DELETE)]),
    ("fhirAuthorization-without-fhirServer", "request", SPEC_REQUEST_EXAMPLE, [(["fhirServer"], _DELETE)]),
    ("fhirServer-not-url", "request", SPEC_REQUEST_EXAMPLE, [(["fhirServer"], "hooks.smarthealthit.org")]),
    ("token_type-not-Bearer", "request", SPEC_REQUEST_EXAMPLE, [(["fhirAuthorization", "token_type"], "bearer")]),
    ("expires_in-not-integer", "request", SPEC_REQUEST_EXAMPLE, [(["fhirAuthorization", "expires_in"], "300")]),
    ("fhirAuthorization-without-subject", "request", SPEC_REQUEST_EXAMPLE, [(["fhirAuthorization", "subject"], _DELETE)]),
    ("prefetch-value-string", "request", SPEC_REQUEST_EXAMPLE, [(["prefetch", "patientToGreet"], "1288992")]),
    ("prefetch-value-without-resourceType", "request", SPEC_REQUEST_EXAMPLE, [(["prefetch", "patientToGreet"], {"id": "1"})]),
    ("prefetch-empty", "request", SPEC_REQUEST_EXAMPLE, [(["prefetch"], {})]),
    ("request-unknown-property", "request", SPEC_REQUEST_EXAMPLE, [(["fhirserver"], "https://x")]),
    # feedback
    ("feedback-accepted-without-acceptedSuggestions", "feedback", SPEC_FEEDBACK_ACCEPTED_EXAMPLE, [(["feedback", 0, "acceptedSuggestions"], _DELETE)]),
    ("feedback-empty-acceptedSuggestions", "feedback", SPEC_FEEDBACK_ACCEPTED_EXAMPLE, [(["feedback", 0, "acceptedSuggestions"], [])]),
    ("feedback-acceptedSuggestion-without-id", "feedback", SPEC_FEEDBACK_ACCEPTED_EXAMPLE, [(["feedback", 0, "acceptedSuggestions", 0], {})]),
    ("feedback-bad-outcome", "feedback", SPEC_FEEDBACK_ACCEPTED_EXAMPLE, [(["feedback", 0, "outcome"], "ignored")]),
    ("feedback-without-card", "feedback", SPEC_FEEDBACK_ACCEPTED_EXAMPLE, [(["feedback", 0, "card"], _DELETE)]),
    ("feedback-without-timestamp", "feedback", SPEC_FEEDBACK_ACCEPTED_EXAMPLE, [(["feedback", 0, "outcomeTimestamp"], _DELETE)]),
    ("feedback-timestamp-space", "feedback", SPEC_FEEDBACK_ACCEPTED_EXAMPLE, [(["feedback", 0, "outcomeTimestamp"], "2021-12-11 10:05:31Z")]),
    ("feedback-timestamp-no-offset", "feedback", SPEC_FEEDBACK_ACCEPTED_EXAMPLE, [(["feedback", 0, "outcomeTimestamp"], "2021-12-11T10:05:31")]),
    ("feedback-timestamp-date-only", "feedback", SPEC_FEEDBACK_ACCEPTED_EXAMPLE, [(["feedback", 0, "outcomeTimestamp"], "2021-12-11")]),
    ("feedback-timestamp-month-13", "feedback", SPEC_FEEDBACK_ACCEPTED_EXAMPLE, [(["feedback", 0, "outcomeTimestamp"], "2021-13-11T10:05:31Z")]),
    ("feedback-empty-list", "feedback", SPEC_FEEDBACK_ACCEPTED_EXAMPLE, [(["feedback"], [])]),
    ("feedback-empty-overrideReason", "feedback", SPEC_FEEDBACK_OVERRIDE_REASON_EXAMPLE, [(["feedback", 0, "overrideReason"], {})]),
    ("feedback-reason-without-code", "feedback", SPEC_FEEDBACK_OVERRIDE_REASON_EXAMPLE, [(["feedback", 0, "overrideReason", "reason", "code"], _DELETE)]),
    ("feedback-null-userComment", "feedback", SPEC_FEEDBACK_OVERRIDE_REASON_EXAMPLE, [(["feedback", 0, "overrideReason", "userComment"], None)]),
    # discovery
    ("service-without-id", "discovery", SPEC_DISCOVERY_EXAMPLE, [(["services", 0, "id"], _DELETE)]),
    ("service-without-description", "discovery", SPEC_DISCOVERY_EXAMPLE, [(["services", 0, "description"], _DELETE)]),
    ("service-without-hook", "discovery", SPEC_DISCOVERY_EXAMPLE, [(["services", 0, "hook"], _DELETE)]),
    ("service-id-with-slash", "discovery", SPEC_DISCOVERY_EXAMPLE, [(["services", 0, "id"], "a/b")]),
    ("prefetch-template-not-string", "discovery", SPEC_DISCOVERY_EXAMPLE, [(["services", 0, "prefetch", "patientToGreet"], {"x": 1})]),
    ("prefetch-empty", "discovery", SPEC_DISCOVERY_EXAMPLE, [(["services", 0, "prefetch"], {})]),
    ("prefetch-nested-token", "discovery", SPEC_DISCOVERY_EXAMPLE, [(["services", 0, "prefetch", "m"], "Medication/{{context.medication.id}}")]),
    ("prefetch-unknown-user-token", "discovery", SPEC_DISCOVERY_EXAMPLE, [(["services", 0, "prefetch", "u"], "Practitioner/{{userId}}")]),
    ("prefetch-misspelt-context-token", "discovery", SPEC_DISCOVERY_EXAMPLE, [(["services", 0, "prefetch", "p"], "Patient/{{context.patientID}}")]),
    ("prefetch-non-token-context-field", "discovery", SPEC_DISCOVERY_EXAMPLE, [(["services", 1, "prefetch", "s"], "MedicationRequest?_id={{context.selections}}")]),
    ("prefetch-unclosed-token", "discovery", SPEC_DISCOVERY_EXAMPLE, [(["services", 0, "prefetch", "p"], "Patient/{{context.patientId}")]),
    ("services-missing", "discovery", SPEC_DISCOVERY_EXAMPLE, [(["services"], _DELETE)]),
    ("service-null-title", "discovery", SPEC_DISCOVERY_EXAMPLE, [(["services", 0, "title"], None)]),
]


@pytest.mark.parametrize("name,base,changes", [n[1:] for n in NEGATIVE], ids=[n[0] for n in NEGATIVE])
def test_negative_case_is_rejected(name, base, changes):
    doc = copy.deepcopy(base)
    for path, value in changes:
        if value is _DELETE:
            _del(doc, path)
        else:
            _set(doc, path, value)
    errs = errors(name, doc)
    assert errs, f"expected {name} to reject {doc!r}"
    # every error must be located on the branch of one of the changed paths
    # (at, above or below it): the document fails for the intended reason only
    changed = [list(path) for path, _ in changes]
    for err in errs:
        where = list(err.absolute_path)
        assert any(where[: len(c)] == c[: len(where)] for c in changed), (where, err.message)


# ---------------------------------------------------------------------------
# 5. boundaries and other positive cases of the strict profile
# ---------------------------------------------------------------------------


def test_summary_of_139_chars_is_accepted():
    doc = copy.deepcopy(FULL_RESPONSE)
    doc["cards"][0]["summary"] = "é" * 139  # characters, not bytes
    assert_valid("response", doc)


def test_any_selection_behavior_allows_several_recommended():
    doc = copy.deepcopy(FULL_RESPONSE)
    doc["cards"][0]["selectionBehavior"] = "any"
    doc["cards"][0]["suggestions"][1]["isRecommended"] = True
    assert_valid("response", doc)


def test_card_with_selection_behavior_but_no_suggestions_is_accepted():
    assert_valid(
        "response",
        {"cards": [{"summary": "s", "indicator": "critical", "source": {"label": "l"}, "selectionBehavior": "any"}]},
    )


def test_feedback_timestamp_variants():
    for ts in ("1985-04-12T23:20:50.52Z", "2020-12-11T00:00:00+00:00", "1996-12-19T16:39:57-08:00"):
        doc = copy.deepcopy(SPEC_FEEDBACK_OVERRIDDEN_EXAMPLE)
        doc["feedback"][0]["outcomeTimestamp"] = ts
        assert_valid("feedback", doc)


def test_feedback_override_with_only_user_comment_and_extension():
    doc = {
        "feedback": [
            {
                "card": "c1",
                "outcome": "overridden",
                "overrideReason": {"userComment": "Not applicable"},
                "outcomeTimestamp": "2020-12-11T00:00:00Z",
                "extension": {"org.example.x": 1},
            }
        ],
        "extension": {"org.example.batch": "b1"},
    }
    assert_valid("feedback", doc)


def test_request_prefetch_null_value_and_extension():
    doc = copy.deepcopy(SPEC_REQUEST_EXAMPLE)
    doc["prefetch"]["conditions"] = None
    doc["prefetch"]["errors"] = {"resourceType": "OperationOutcome", "issue": []}
    doc["extension"] = SPEC_REQUEST_EXTENSION_EXAMPLE["extension"]
    doc["context"]["org.example.extraField"] = "newer hook minor versions may add optional fields"
    assert_valid("request", doc)


def test_request_all_patient_view_user_types():
    for user in ("Practitioner/a", "PractitionerRole/b", "Patient/c", "RelatedPerson/d"):
        doc = copy.deepcopy(SPEC_REQUEST_EXAMPLE)
        doc["context"]["userId"] = user
        assert_valid("request", doc)


def test_discovery_empty_services_and_user_tokens():
    assert_valid("discovery", {"services": []})
    doc = copy.deepcopy(SPEC_DISCOVERY_EXAMPLE)
    doc["services"][0]["prefetch"] = {
        "user": "{{context.userId}}",
        "role": "PractitionerRole?_id={{userPractitionerRoleId}}&_include=PractitionerRole:practitioner",
        "enc": "Encounter/{{context.encounterId}}",
    }
    assert_valid("discovery", doc)
    # unknown hooks may use any root-level context field as a token
    doc["services"].append(
        {
            "hook": "org.example.patient-transmogrify",
            "description": "d",
            "id": "x",
            "prefetch": {"a": "Account/{{context.accountId}}"},
        }
    )
    assert_valid("discovery", doc)


def test_string_formats_do_not_depend_on_the_format_checker():
    """date-time / uri / uuid are also enforced by patterns, so a validator without
    FormatChecker (or one lacking rfc3339-validator / rfc3987) still rejects them."""
    cases = [
        ("feedback", SPEC_FEEDBACK_ACCEPTED_EXAMPLE, ["feedback", 0, "outcomeTimestamp"], "2021-12-11T10:05:31"),
        ("request", SPEC_REQUEST_EXAMPLE, ["fhirServer"], "not a url"),
        ("request", SPEC_REQUEST_EXAMPLE, ["hookInstance"], "d1577c69dfbe44adba6d3e05e953b2ea-"),
        ("response", FULL_RESPONSE, ["cards", 0, "links", 0, "url"], "guideline.html"),
    ]
    for name, base, path, value in cases:
        doc = copy.deepcopy(base)
        _set(doc, path, value)
        assert list(Draft202012Validator(SCHEMAS[name]).iter_errors(doc)), (name, path, value)
        assert_invalid(name, doc)
