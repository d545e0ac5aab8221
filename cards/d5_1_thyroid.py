"""D5.1 - Thyroid function in RPL.

D5.1a (NVOG 2022 part D, module 5.1): screen thyroid function (TSH) before
conception. When: RPL and no usable TSH result in the last 12 months, and no
TSH ordered or in the draft orders. Then: suggest a TSH ServiceRequest.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from fhir_mappings.facts import PatientFacts

from .common import lab_fact, loss_fact, when
from .i18n import Text, _
from .model import Action, CardDraft, Indicator, RuleContext, Suggestion

TSH = _("TSH")
TSH_SCREENING_VALID = timedelta(days=365)


def d5_1a(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    if not facts.has_rpl or facts.has_order("tsh") is not None:
        return
    cutoff = facts.today - TSH_SCREENING_VALID
    recent = [r for r in facts.results("tsh") if r.date is not None and r.date >= cutoff]
    if recent:
        return
    previous = facts.tsh
    unusable = [r for r in facts.unusable_results if r.test == "tsh" and r.date and r.date >= cutoff]
    lines = [loss_fact(facts)]
    if previous is not None:
        lines.append(lab_fact(TSH, previous))
        lines.append(Text(_("No TSH in the last 12 months")))
    else:
        lines.append(Text(_("No TSH result on record")))
    for result in unusable:
        lines.append(
            Text(
                _("TSH of %(date)s recorded in an unknown unit (%(unit)s): not used (%(source)s)"),
                {"date": when(result.date), "unit": result.original_unit or "-", "source": result.source},
            )
        )
    order = ctx.orders.service_request("tsh", Text(TSH))
    yield CardDraft(
        rec_id="D5.1a",
        indicator=Indicator.INFO,
        summary=Text(_("Check thyroid function: no TSH in the last 12 months")),
        facts=tuple(lines),
        advice=(Text(_("Screen thyroid function with TSH in women with recurrent pregnancy loss, before a next pregnancy.")),),
        suggestions=(
            Suggestion(
                Text(_("Order TSH")),
                (Action("create", Text(_("Order %(test)s"), {"test": Text(TSH)}), resource=order),),
                recommended=True,
            ),
        ),
    )
