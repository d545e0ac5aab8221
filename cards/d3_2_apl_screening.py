"""D3.2 - Screen women with RPL for antiphospholipid antibodies.

Recommendation (NVOG 2022 part D, module 3.2, as ESHRE 2022): test for lupus
anticoagulant, anticardiolipin IgG and IgM, and anti-beta2-glycoprotein I IgG
and IgM.

When: RPL, and at least one of the five tests has no result on record and is
neither ordered nor among the draft orders.
Then: an info card with one suggestion that creates one ServiceRequest per
missing test.

Version 2, the repeat: APS needs persistence, so a test whose positive result
has no later result of the same test at least 12 weeks after it gets a repeat,
to be drawn from the date 12 weeks after that positive (the ServiceRequest's
occurrencePeriod.start). Two positives 12 or more weeks apart (persistent) need
no repeat, and neither does a positive followed by any result of the test 12
or more weeks later. Reading: of several positives without such a later result,
the earliest sets the date; a repeat already ordered (the test among the active
or draft orders) is not suggested again. Possible APS (D68.6 or another APS
code) changes nothing here: the tests confirm it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

from fhir_mappings.labs import APL_TESTS
from fhir_mappings.facts import APL_PERSISTENCE_DAYS, AntibodyHistory, LabResult, PatientFacts

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


REPEAT_AFTER = timedelta(days=APL_PERSISTENCE_DAYS)


def positive_to_repeat(history: AntibodyHistory) -> LabResult | None:
    """The first positive result of a test that no later result confirms or refutes at least
    12 weeks after it; None when the test is persistent or needs no repeat."""
    if history.persistent:
        return None
    for positive in history.positive:  # oldest first
        if positive.date is None:
            continue
        due = positive.date + REPEAT_AFTER
        if not any(r.date is not None and r.date >= due for r in history.results):
            return positive
    return None


def repeat_from(result: LabResult) -> date:
    return result.date + REPEAT_AFTER


def d3_2(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    if not facts.has_rpl:
        return
    missing = [
        test
        for test in APL_TESTS
        if not facts.results(test) and facts.has_order(test) is None
    ]
    repeats = [
        positive
        for history in facts.antibodies
        if (positive := positive_to_repeat(history)) is not None and facts.has_order(history.test) is None
    ]
    if not missing and not repeats:
        return
    done = [history.latest for history in facts.antibodies if history.latest is not None]
    suggestions = []
    lines = [loss_fact(facts)]
    advice = []
    if missing:
        names = tuple(Text(TEST_NAMES[test]) for test in missing)
        actions = tuple(
            Action(
                "create",
                Text(_("Order %(test)s"), {"test": Text(TEST_NAMES[test])}),
                resource=ctx.orders.service_request(test, Text(TEST_NAMES[test])),
            )
            for test in missing
        )
        suggestions.append(Suggestion(Text(_("Order the missing antiphospholipid tests")), actions, recommended=True))
        lines.append(Text(_("No result on record for: %(tests)s"), {"tests": names}))
        advice.append(Text(_("Screen every woman with recurrent pregnancy loss for lupus anticoagulant, anticardiolipin IgG/IgM and anti-beta2-glycoprotein I IgG/IgM.")))
    if repeats:
        actions = tuple(
            Action(
                "create",
                Text(_("Repeat %(test)s from %(date)s"), {"test": Text(TEST_NAMES[r.test]), "date": repeat_from(r)}),
                resource={
                    **ctx.orders.service_request(r.test, Text(TEST_NAMES[r.test])),
                    "occurrencePeriod": {"start": repeat_from(r).isoformat()},
                },
            )
            for r in repeats
        )
        suggestions.append(Suggestion(Text(_("Order the repeat antiphospholipid tests")), actions, recommended=True))
        lines += [
            Text(_("Positive, not repeated 12 weeks or more later: %(result)s; repeat from %(date)s"),
                 {"result": lab_fact(TEST_NAMES[r.test], r), "date": repeat_from(r)})
            for r in repeats
        ]
        advice.append(Text(_("Repeat a positive antiphospholipid antibody test after at least 12 weeks: antiphospholipid syndrome needs persistently positive tests.")))
    lines += [lab_fact(TEST_NAMES[r.test], r) for r in done if r not in repeats]
    if missing and repeats:
        summary = Text(_("Antiphospholipid antibodies: %(count)s of 5 tests missing, %(repeat)s positive to repeat after 12 weeks"),
                       {"count": len(missing), "repeat": len(repeats)})
    elif missing:
        summary = Text(_("Antiphospholipid antibody screening incomplete: %(count)s of 5 tests missing"), {"count": len(missing)})
    else:
        summary = Text(_("Positive antiphospholipid antibody: repeat the test 12 weeks after the first result"))
    yield CardDraft(
        rec_id=REC_ID,
        indicator=Indicator.INFO,
        summary=summary,
        facts=tuple(lines),
        advice=tuple(advice),
        suggestions=tuple(suggestions),
    )
