"""The OpenAPI 3.1 document of the service's own endpoints, served at GET /openapi.json.

Built from the JSON Schemas the service and its tests already use (service/schemas/),
so the document cannot drift from what is checked: each schema's ``$defs`` become
components named ``<schema>.<def>`` and its ``#/$defs/...`` references point there.
OpenAPI 3.1 schemas are JSON Schema 2020-12, so the schemas go in unchanged otherwise.
tests/test_openapi.py validates the document (openapi-spec-validator) and runs a bounded
property-based test (schemathesis) against the running service.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SERVICE_IDS = ("rpl-patient-view", "rpl-order-select", "rpl-order-sign")
SCHEMAS = {"request": "HookRequest", "response": "CdsResponse", "discovery": "Discovery", "feedback": "FeedbackRequest"}
JSON = "application/json"
FHIR_JSON = "application/fhir+json"


def _component(schema_file: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the top-level schema, its $defs) with references rewritten to components."""
    text = resources.files("service").joinpath("schemas", f"{schema_file}.schema.json").read_text(encoding="utf-8")
    text = text.replace('"#/$defs/', f'"#/components/schemas/{schema_file}.')
    schema = json.loads(text)
    defs = schema.pop("$defs", {})
    schema.pop("$schema", None)
    schema.pop("$id", None)  # an $id would make the rewritten references relative to it
    return schema, {f"{schema_file}.{name}": value for name, value in defs.items()}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "Malformed JSON or an invalid request; every problem named in the OperationOutcome.",
        401: "No valid JWT of a trusted CDS client (RPL_AUTH_ENABLED); WWW-Authenticate: Bearer. "
             "The body says only 'authentication required': the reason is in the service's log.",
        404: "No CDS service with this id.",
        412: "The data the rules need is neither in prefetch nor obtainable from an allowed FHIR server.",
        413: "The body is larger than RPL_MAX_BODY_BYTES.",
        415: "The body is not JSON.",
        503: "A store the call needs is unavailable (feedback database, JWT replay memory); retry later.",
    }
    return {
        str(status): {"description": reasons[status], "content": {JSON: {"schema": _ref("OperationOutcome")}}}
        for status in statuses
    }


@cache
def document() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("rpl-cds")
    except PackageNotFoundError:
        release = "0.0.0"
    components: dict[str, Any] = {}
    for schema_file, name in SCHEMAS.items():
        schema, defs = _component(schema_file)
        components[name] = schema
        components.update(defs)
    components["OperationOutcome"] = {
        "description": "A FHIR R4 OperationOutcome that says what is wrong.",
        "type": "object",
        "required": ["resourceType", "issue"],
        "properties": {
            "resourceType": {"const": "OperationOutcome"},
            "issue": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["severity", "code"],
                    "properties": {
                        "severity": {"enum": ["fatal", "error", "warning", "information"]},
                        "code": {"type": "string"},
                        "diagnostics": {"type": "string"},
                    },
                },
            },
        },
    }
    components["FeedbackStored"] = {
        "type": "object", "required": ["stored", "duplicates"], "additionalProperties": False,
        "properties": {
            "stored": {"type": "integer", "minimum": 0, "description": "Feedback items stored now."},
            "duplicates": {"type": "integer", "minimum": 0,
                           "description": "Items stored before (sent again): acknowledged, stored once."},
        },
    }
    components["Health"] = {
        "type": "object", "required": ["status"],
        "properties": {"status": {"type": "string"}, "database": {"enum": ["ok", "unreachable"]}},
    }
    service_id = {
        "name": "service_id", "in": "path", "required": True,
        "description": "Id of a CDS service, from discovery.",
        "schema": {"type": "string", "enum": list(SERVICE_IDS)},
    }
    jwt = [{"cdsClientJwt": []}]
    json_body = lambda name: {  # noqa: E731
        "required": True, "content": {JSON: {"schema": _ref(name)}, FHIR_JSON: {"schema": _ref(name)}},
    }
    health = lambda text: {  # noqa: E731
        "description": text, "content": {JSON: {"schema": _ref("Health")}},
    }
    discovery = {
        "operationId": "discovery",
        "summary": "Discovery: the CDS services with their prefetch templates.",
        "security": jwt,
        "responses": {
            "200": {"description": "The services.", "content": {JSON: {"schema": _ref("Discovery")}}},
            **_errors(401, 503),
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "rpl-cds: CDS Hooks service for recurrent pregnancy loss",
            "version": release,
            "summary": "CDS Hooks 2.0 service (NVOG 2022 Herhaalde miskraam); FHIR R4.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "paths": {
            "/cds-services": {"get": discovery},
            # The same, for clients and people who type the discovery URL with a slash.
            "/cds-services/": {"get": {**discovery, "operationId": "discoveryWithSlash"}},
            "/cds-services/{service_id}": {
                "post": {
                    "operationId": "callService",
                    "summary": "A hook call; answers the cards (none when nothing applies).",
                    "security": jwt,
                    "parameters": [service_id],
                    "requestBody": json_body("HookRequest"),
                    "responses": {
                        "200": {"description": "The cards.", "content": {JSON: {"schema": _ref("CdsResponse")}}},
                        **_errors(400, 401, 404, 412, 413, 415, 503),
                    },
                }
            },
            "/cds-services/{service_id}/feedback": {
                "post": {
                    "operationId": "feedback",
                    "summary": "Feedback on cards, stored durably before the answer.",
                    "security": jwt,
                    "parameters": [service_id],
                    "requestBody": json_body("FeedbackRequest"),
                    "responses": {
                        "200": {"description": "Stored.", "content": {JSON: {"schema": _ref("FeedbackStored")}}},
                        **_errors(400, 401, 404, 413, 415),
                        "503": {
                            **_errors(503)["503"],
                            "headers": {"Retry-After": {"description": "Seconds to wait before retrying.",
                                                        "schema": {"type": "integer"}}},
                        },
                    },
                }
            },
            "/healthz": {
                "get": {"operationId": "healthz", "summary": "Liveness: the process answers.", "security": [],
                        "responses": {"200": health("Alive.")}}
            },
            "/readyz": {
                "get": {"operationId": "readyz", "summary": "Readiness: the feedback database is reachable.",
                        "security": [],
                        "responses": {"200": health("Ready."), "503": health("The feedback database is unreachable.")}}
            },
            "/metrics": {
                "get": {"operationId": "metrics", "summary": "Prometheus metrics of this instance (no patient data).",
                        "security": [],
                        "responses": {"200": {"description": "Prometheus text exposition format.",
                                              "content": {"text/plain": {"schema": {"type": "string"}}}}}}
            },
            **{path: {"get": {
                "operationId": operation, "summary": summary,
                "security": [{"adminToken": []}, {"adminBasic": []}],
                "parameters": [
                    {"name": "since", "in": "query", "required": False, "description": "First day, YYYY-MM-DD "
                     "(default: 12 weeks ago).", "schema": {"type": "string", "format": "date"}},
                    {"name": "until", "in": "query", "required": False, "description": "Day after the last, "
                     "YYYY-MM-DD.", "schema": {"type": "string", "format": "date"}},
                ],
                "responses": {
                    "200": {"description": "The report.", "content": {media: {"schema": {"type": "string"}}}},
                    "400": _errors(400)["400"],
                    "401": {"description": "No valid admin credential (RPL_ADMIN_TOKEN or RPL_ADMIN_USER/"
                                           "RPL_ADMIN_PASSWORD); WWW-Authenticate says which.",
                            "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "404": {"description": "The dashboard is off: no admin credential is configured.",
                            "content": {JSON: {"schema": _ref("OperationOutcome")}}},
                    **_errors(503),
                },
            }} for path, operation, summary, media in (
                ("/admin/", "adminDashboard", "Governance dashboard: the report per recommendation and week (HTML).",
                 "text/html"),
                ("/admin/report.csv", "adminReportCsv", "The governance report as CSV.", "text/csv"),
            )},
            "/openapi.json": {
                "get": {"operationId": "openapi", "summary": "This document.", "security": [],
                        "responses": {"200": {"description": "The OpenAPI 3.1 document.",
                                              "content": {JSON: {"schema": {"type": "object"}}}}}}
            },
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "adminToken": {"type": "http", "scheme": "bearer",
                               "description": "RPL_ADMIN_TOKEN: the governance dashboard's own credential."},
                "adminBasic": {"type": "http", "scheme": "basic",
                               "description": "RPL_ADMIN_USER / RPL_ADMIN_PASSWORD."},
                "cdsClientJwt": {
                    "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "A JWT signed by a trusted CDS client (CDS Hooks 2.0 'Trusting CDS Clients'); "
                                   "aud is the URL called. See README, Security.",
                }
            },
        },
    }
