"""D5.1 - Thyroid function in RPL (NVOG 2022 part D, module 5.1).

D5.1a: screen thyroid function (TSH) before conception. When: RPL and no
usable TSH result in the last 12 months, and no TSH ordered or in the draft
orders. Then: suggest a TSH ServiceRequest.
D5.1b (TPO antibodies not standard) is a row of the discouraged-order table.
D5.1c: free T4 when TSH is abnormal (below).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from fhir_mappings.facts import Interpretation, PatientFacts

from .common import lab_fact, loss_fact, when
from .i18n import Text, _
from .model import Action, CardDraft, Indicator, RuleContext, Suggestion

TSH = _("TSH")
TSH_SCREENING_VALID = timedelta(days=365)


def d5_1a(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    if not facts.has_rpl or facts.has_order("tsh") is not None:
        return
    if facts.active_condition("hypothyroidism") is not None and facts.has_order("levothyroxine") is None:
        return  # E5.1a asks for TSH and free T4 together (version 2)
    cutoff = facts.today - TSH_SCREENING_VALID
    recent = [r for r in facts.results("tsh") if r.date is not None and r.date >= cutoff]
    if recent:
        return
    previous = facts.tsh
    unusable = [r for r in facts.unusable_results if r.test == "tsh" and r.date and r.date >= cutoff]
    lines = [loss_fact(facts)]
    if previous is not None:
        lines.append(lab_fact(TSH, previous))
    # With a TSH of the last 12 months in a unit the service cannot read, say so rather than
    # "no TSH": the card asks for a TSH in a usable unit, not for a first one.
    if unusable:
        lines.append(Text(_("No TSH in a known unit in the last 12 months")))
    elif previous is not None:
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


# -- D5.1c -------------------------------------------------------------------------
FT4 = _("Free T4")
# A free T4 up to 30 days before the TSH still belongs to it (often the same sample).
FT4_PAIRING = timedelta(days=30)


def current_tsh(facts: PatientFacts):
    """The latest TSH if it is from the last 12 months: an older one is no basis to treat
    or to add tests on (D5.1a asks for a new one instead)."""
    tsh = facts.tsh
    if tsh is None or tsh.date is None or facts.today - tsh.date > TSH_SCREENING_VALID:
        return None
    return tsh


def paired_ft4(facts: PatientFacts):
    """The latest free T4 that belongs to the latest (current) TSH, or None."""
    tsh = current_tsh(facts)
    if tsh is None or tsh.date is None:
        return None
    ft4 = [r for r in facts.results("free-t4") if r.date is not None and r.date >= tsh.date - FT4_PAIRING]
    return ft4[-1] if ft4 else None


def tsh_abnormal(facts: PatientFacts) -> bool:
    tsh = current_tsh(facts)
    return tsh is not None and tsh.interpretation in (Interpretation.HIGH, Interpretation.LOW)


def d5_1c(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    """D5.1c - Free T4 when TSH is abnormal (NVOG 2022 part D, module 5.1).

    When: RPL, the latest TSH, of the last 12 months, outside the lab's reference
    range (else 0.4-4.0 mIU/L), no free T4 belonging to it, none ordered. Then:
    suggest free T4.
    """
    if not facts.has_rpl or not tsh_abnormal(facts) or paired_ft4(facts) is not None:
        return
    if facts.has_order("free-t4") is not None:
        return
    order = ctx.orders.service_request("free-t4", Text(FT4), reason_references=(current_tsh(facts).source,))
    yield CardDraft(
        rec_id="D5.1c",
        indicator=Indicator.INFO,
        summary=Text(_("TSH outside the reference range: check free T4")),
        facts=(lab_fact(TSH, current_tsh(facts)), _range_fact(current_tsh(facts)), Text(_("No free T4 with this TSH"))),
        advice=(Text(_("When TSH is abnormal, measure free T4 to tell overt from subclinical thyroid disease.")),),
        suggestions=(Suggestion(Text(_("Order free T4")), (Action("create", Text(_("Order %(test)s"), {"test": Text(FT4)}), resource=order),), recommended=True),),
    )


def _range_fact(result) -> Text:
    if result.reference_low is not None or result.reference_high is not None:
        return Text(_("Reference range of the lab: %(low)s-%(high)s %(unit)s"), {
            "low": float(result.reference_low) if result.reference_low is not None else "",
            "high": float(result.reference_high) if result.reference_high is not None else "",
            "unit": result.unit})
    return Text(_("No reference range from the lab: 0.4-4.0 mIU/L used"))
