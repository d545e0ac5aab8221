"""E2 - Genetic counselling after an abnormal karyotype.

NVOG 2022 part E, module 2: offer genetic counselling when parental
karyotyping or analysis of pregnancy tissue found an abnormality (such as a
balanced translocation), and discuss preimplantation genetic testing.
When: an abnormal karyotype/pregnancy-tissue result (interpretation A/AA) or
an active balanced-translocation / chromosomal-rearrangement diagnosis, and no
genetic counselling ordered. Then: suggest a genetic counselling referral.
"""

from __future__ import annotations

from collections.abc import Iterator

from fhir_mappings.facts import Interpretation, PatientFacts

from .common import when
from .i18n import Text, _
from .model import Action, CardDraft, Indicator, RuleContext, Suggestion

COUNSELLING = _("Referral for genetic counselling")


def e2(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    if facts.has_order("genetic-counselling") is not None:
        return
    evidence: list[Text] = []
    for result in (*facts.results("karyotype"), *facts.results("pregnancy-tissue-genetics")):
        if result.interpretation is Interpretation.ABNORMAL:
            evidence.append(Text(_("Abnormal chromosome result %(value)s on %(date)s (%(source)s)"),
                                 {"value": result.text or "", "date": when(result.date), "source": result.source}))
    carrier = facts.active_condition("chromosomal-cause")
    if carrier is not None:
        evidence.append(Text(_("Chromosomal rearrangement on record (%(source)s)"), {"source": carrier.source}))
    if not evidence:
        return
    sources = tuple(str(line.params["source"]) for line in evidence)
    order = ctx.orders.service_request("genetic-counselling", Text(COUNSELLING), reason_references=sources)
    yield CardDraft(
        rec_id="E2",
        indicator=Indicator.INFO,
        summary=Text(_("Chromosomal abnormality found: offer genetic counselling and discuss PGT")),
        facts=tuple(evidence),
        advice=(Text(_("Offer genetic counselling when karyotyping of the parents or of pregnancy tissue found an abnormality, and discuss preimplantation genetic testing (PGT).")),),
        suggestions=(Suggestion(Text(_("Refer for genetic counselling")), (Action("create", Text(COUNSELLING), resource=order),), recommended=True),),
    )
