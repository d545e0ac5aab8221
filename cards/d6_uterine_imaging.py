"""D6 - Offer an assessment of the uterine anatomy.

NVOG 2022 part D, module 6: prefer transvaginal 3D ultrasound for congenital
anomalies (2D for adenomyosis); when a Mullerian malformation is found,
examine the kidneys and urinary tract too.
When: RPL, no uterine imaging on record (completed Procedure) and none
ordered, and not pregnant now. Then: suggest a transvaginal ultrasound order.
Reading: the assessment is part of the work-up before a next pregnancy; a
3D scan for congenital anomalies is not what a pregnant woman needs, so the
card waits until she is not pregnant.
"""

from __future__ import annotations

from collections.abc import Iterator

from fhir_mappings.facts import PatientFacts

from .common import loss_fact
from .i18n import Text, _
from .model import Action, CardDraft, Indicator, RuleContext, Suggestion

TVUS_3D = _("Transvaginal 3D ultrasound of the uterus")


def d6(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    if not facts.has_rpl or facts.pregnancy.current or facts.has_order("uterine-imaging") is not None:
        return
    if any(f.what == "uterine-imaging" for f in facts.findings):
        return
    order = ctx.orders.service_request("uterine-imaging", Text(TVUS_3D))
    yield CardDraft(
        rec_id="D6",
        indicator=Indicator.INFO,
        summary=Text(_("Assess the uterine anatomy: no uterine imaging on record")),
        facts=(loss_fact(facts), Text(_("No uterine imaging (ultrasound, hysteroscopy, MRI) on record"))),
        advice=(
            Text(_("Offer an assessment of the uterine anatomy, preferably transvaginal 3D ultrasound for congenital anomalies (2D for adenomyosis).")),
            Text(_("When a Mullerian malformation is found, also examine the kidneys and urinary tract.")),
        ),
        suggestions=(Suggestion(Text(_("Order a transvaginal 3D ultrasound")),
                                (Action("create", Text(TVUS_3D), resource=order),), recommended=True),),
    )
