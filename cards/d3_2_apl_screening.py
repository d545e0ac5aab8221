"""D3.2 - Screen women with RPL for antiphospholipid antibodies.

Recommendation (NVOG 2022 part D, module 3.2, as ESHRE 2022): test for lupus
anticoagulant, anticardiolipin IgG and IgM, and anti-beta2-glycoprotein I IgG
and IgM.

When: RPL, and at least one of the five tests has no result on record and is
neither ordered nor among the draft orders.
Then: an info card with one suggestion that creates one ServiceRequest per
missing test.
"""

from __future__ import annotations

from collections.abc import Iterator

from fhir_mappings.labs import APL_TESTS
from fhir_mappings.facts import PatientFacts

from .common import lab_fact, loss_fact
from .i18n import Text, _
from .model import Action, CardDraft, Indicator, RuleContext, Suggestion

REC_ID = "D3.2"

TEST_NAMES = {
    "lupus-anticoagulant": _("Lupus anticoagulant"),
    "anticardiolipin-igg": _("Anticardiolipin IgG"),
    "anticardiolipin-igm": _("Anticardiolipin IgM"),
    "anti-beta2-glycoprotein-igg": _("Anti-beta2-glycoprotein I IgG"),
    "anti-beta2-glycoprotein-igm": _("Anti-beta2-glycoprotein I IgM"),
}


def d3_2(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    if not facts.has_rpl:
        return
    missing = [
        test
        for test in APL_TESTS
        if not facts.results(test) and facts.has_order(test) is None
    ]
    if not missing:
        return
    done = [history.latest for history in facts.antibodies if history.latest is not None]
    names = tuple(Text(TEST_NAMES[test]) for test in missing)
    actions = tuple(
        Action(
            "create",
            Text(_("Order %(test)s"), {"test": Text(TEST_NAMES[test])}),
            resource=ctx.orders.service_request(test, Text(TEST_NAMES[test])),
        )
        for test in missing
    )
    yield CardDraft(
        rec_id=REC_ID,
        indicator=Indicator.INFO,
        summary=Text(_("Antiphospholipid antibody screening incomplete: %(count)s of 5 tests missing"), {"count": len(missing)}),
        facts=(
            loss_fact(facts),
            Text(_("No result on record for: %(tests)s"), {"tests": names}),
            *(lab_fact(TEST_NAMES[r.test], r) for r in done),
        ),
        advice=(
            Text(_("Screen every woman with recurrent pregnancy loss for lupus anticoagulant, anticardiolipin IgG/IgM and anti-beta2-glycoprotein I IgG/IgM.")),
        ),
        suggestions=(Suggestion(Text(_("Order the missing antiphospholipid tests")), actions, recommended=True),),
    )
