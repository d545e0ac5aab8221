"""E3.2 - Antiphospholipid syndrome: low-dose aspirin plus heparin.

NVOG 2022 part E, module 3.2 (ESHRE 2022): women with APS and three or more
losses get low-dose aspirin (75-100 mg/day) plus prophylactic heparin (LMWH)
from the positive pregnancy test; aspirin may start before conception. The
Dutch working group extends this to two losses with persistent
antiphospholipid antibodies.
When: (APS criteria met and >= 3 losses) or (persistent aPL and >= 2 losses).
Then: suggest aspirin when not ordered; when pregnant, also suggest LMWH when
not ordered. The LMWH dose is left to the prescriber ("prophylactic dose"):
the catalogue names no product dose. Products, codes and doses per region
come from the order templates low-dose-aspirin and lmwh-prophylactic.
"""

from __future__ import annotations

from collections.abc import Iterator

from fhir_mappings.facts import PatientFacts

from .common import lab_fact, loss_fact
from .d3_2_apl_screening import TEST_NAMES
from .i18n import Text, _
from .model import Action, CardDraft, Indicator, RuleContext, Suggestion
from .orders import order_description


def indicated(facts: PatientFacts) -> bool:
    return (facts.aps_criteria_met and facts.losses >= 3) or (bool(facts.persistent_antibodies) and facts.losses >= 2)


def e3_2(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    if not indicated(facts):
        return
    pregnant = facts.pregnancy.ongoing
    suggestions = []
    if facts.has_order("low-dose-aspirin") is None:
        order = ctx.orders.medication_order("low-dose-aspirin")
        suggestions.append(Suggestion(
            Text(_("Prescribe low-dose aspirin")),
            (Action("create", order_description(order), resource=order.resource),),
            recommended=True,
        ))
    if pregnant and facts.has_order("heparins") is None:
        order = ctx.orders.medication_order("lmwh-prophylactic")
        suggestions.append(Suggestion(
            Text(_("Prescribe prophylactic low-molecular-weight heparin (LMWH)")),
            (Action("create", order_description(order), resource=order.resource),),
            recommended=True,
        ))
    if not suggestions:
        return
    evidence = [loss_fact(facts)]
    aps = facts.active_condition("antiphospholipid-syndrome")
    if aps is not None:
        evidence.append(Text(_("Antiphospholipid syndrome on record (%(source)s)"), {"source": aps.source}))
    for history in facts.persistent_antibodies:
        for result in history.positive:
            evidence.append(lab_fact(TEST_NAMES[history.test], result))
    summary = (
        Text(_("Antiphospholipid syndrome in pregnancy: low-dose aspirin plus prophylactic heparin"))
        if pregnant
        else Text(_("Antiphospholipid syndrome: low-dose aspirin, and heparin from the positive pregnancy test"))
    )
    yield CardDraft(
        rec_id="E3.2",
        indicator=Indicator.INFO,
        summary=summary,
        facts=tuple(evidence),
        advice=(
            Text(_("With antiphospholipid syndrome and three or more losses (or two losses with persistent antiphospholipid antibodies): low-dose aspirin 75-100 mg a day plus prophylactic heparin from the positive pregnancy test; aspirin may start before conception.")),
        ),
        suggestions=tuple(suggestions),
        selection_behavior="any",
    )
