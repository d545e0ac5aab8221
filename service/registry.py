"""The three CDS services, declared with their prefetch templates.

Prefetch asks for exactly what the rules read. The Observation query lists
the codes of the observation value sets, so a hospital's extra ValueSet with
local lab codes also widens what the EHR prefetches. Templates use type-level
searches on ``patient={{context.patientId}}``, token equality (comma = OR) and
_count, as the spec's prefetch restrictions recommend, and ``_include`` of the
Medications the orders reference (beyond that subset, but without it an EHR
that references Medications sends orders nobody can read; an EHR that ignores
it leaves them to the service to read, see service/medications.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from cards.model import Hook
from fhir_mappings.extract import OBSERVATION_SETS
from fhir_mappings.valuesets import ValueSetIndex

from .protocol import ServiceDescriptor

PATIENT_TOKEN = "{{context.patientId}}"


@dataclass(frozen=True)
class PrefetchQuery:
    key: str
    template: str

    @property
    def is_read(self) -> bool:
        return "?" not in self.template


@dataclass(frozen=True)
class ServiceDef:
    id: str
    hook: Hook
    title: str
    description: str
    prefetch: tuple[PrefetchQuery, ...]

    def descriptor(self) -> ServiceDescriptor:
        return ServiceDescriptor(
            hook=self.hook.value,
            title=self.title,
            description=self.description,
            id=self.id,
            prefetch={q.key: q.template for q in self.prefetch},
        )


def prefetch_queries(valuesets: ValueSetIndex, page_size: int) -> tuple[PrefetchQuery, ...]:
    codes = sorted(
        f"{system}|{code}"
        for system, code in valuesets.codes_of(OBSERVATION_SETS)
    )
    count = f"&_count={page_size}"
    return (
        PrefetchQuery("patient", f"Patient/{PATIENT_TOKEN}"),
        PrefetchQuery("conditions", f"Condition?patient={PATIENT_TOKEN}{count}"),
        PrefetchQuery("observations", f"Observation?patient={PATIENT_TOKEN}&code={','.join(codes)}{count}"),
        # _include: the Medication an order references (medicationReference, as Epic sends it) comes along.
        PrefetchQuery("medicationRequests", f"MedicationRequest?patient={PATIENT_TOKEN}&status=active,on-hold,draft{count}"
                                            "&_include=MedicationRequest:medication"),
        PrefetchQuery("medicationStatements", f"MedicationStatement?patient={PATIENT_TOKEN}&status=active,intended{count}"
                                              "&_include=MedicationStatement:medication"),
        PrefetchQuery("serviceRequests", f"ServiceRequest?patient={PATIENT_TOKEN}&status=active,on-hold,draft{count}"),
        PrefetchQuery("procedures", f"Procedure?patient={PATIENT_TOKEN}&status=completed,in-progress{count}"),
        # Imaging is often recorded as a report, not a Procedure (D6: uterine imaging on record).
        PrefetchQuery(
            "diagnosticReports", f"DiagnosticReport?patient={PATIENT_TOKEN}&status=final,amended,corrected,appended{count}"
        ),
    )


def build_services(valuesets: ValueSetIndex, page_size: int) -> dict[str, ServiceDef]:
    prefetch = prefetch_queries(valuesets, page_size)
    services = (
        ServiceDef(
            "rpl-order-select",
            Hook.ORDER_SELECT,
            "Recurrent pregnancy loss: order check",
            "Warns when a newly selected order is advised against for women with recurrent pregnancy loss "
            "(NVOG 2022 / ESHRE 2022), such as progesterone or IVIg without an indication, with a suggestion to remove it.",
            prefetch,
        ),
        ServiceDef(
            "rpl-order-sign",
            Hook.ORDER_SIGN,
            "Recurrent pregnancy loss: check before signing",
            "Checks every draft order before signing against the recurrent pregnancy loss guideline (NVOG 2022 / ESHRE 2022) "
            "and warns about discouraged or contraindicated orders.",
            prefetch,
        ),
        ServiceDef(
            "rpl-patient-view",
            Hook.PATIENT_VIEW,
            "Recurrent pregnancy loss: work-up and treatment",
            "Suggests the work-up and treatment that the Dutch guideline on recurrent pregnancy loss (NVOG 2022, following "
            "ESHRE 2022) endorses for this patient, and flags discouraged treatments already active.",
            prefetch,
        ),
    )
    # Sorted by id so discovery is deterministic.
    return {s.id: s for s in sorted(services, key=lambda s: s.id)}
