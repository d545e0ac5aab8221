"""How many cards, in which order (catalogue version 2, "How many cards, in which order").

A clinician reads two or three cards, not eight. After the rules have run:
- patient-view: the counselling rows of one patient (C, E1, E5.6, E8.5/S3, S1) become
  one counselling card (topic C); the work-up suggestions (D3.2, D5.1a, D5.1c, D6) one
  work-up card (topic D) with one suggestion per missing test, all recommended;
- order-sign: several discouraged tests (D rows) become one card (topic D) listing each
  with its module and its own delete suggestion;
- every card: critical, then warnings, then suggestions that carry orders, then
  counselling.

A merged card lists every carried ID at the start of its own line of the detail, with
its module, and ``carried_ids`` says which rows it carries (feedback on it counts for
each). Reading: a group of one card is left as it is (its own topic is the more precise
one); the counselling card is only formed around the lifestyle card C, because topic C
is an RPL row - after a single miscarriage S1 and S3 stay two cards.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .catalog import recommendation
from .i18n import Text, _
from .model import INDICATOR_RANK, Action, CardDraft, Hook, Indicator, OverrideReason, Suggestion

# Merged counselling card: the order of the carried rows' lines (personal lines of every
# row come first anyway; then the prognosis, support, supplements; then C's general points).
COUNSELLING_IDS = ("E1", "S1", "E8.5", "S3", "E5.6", "C")
WORKUP_IDS = ("D3.2", "D5.1a", "D5.1c", "D6")

# Short names of what a carried row is about, for the merged card's summary.
SHORT_TOPICS = {
    "C": _("healthy behaviour"),
    "E1": _("prognosis"),
    "E5.6": _("vitamin D"),
    "E8.5": _("folic acid"),
    "S3": _("folic acid"),
    "S1": _("emotional support"),
    "D3.2": _("antiphospholipid antibodies"),
    "D5.1a": _("TSH"),
    "D5.1c": _("free T4"),
    "D6": _("uterine imaging"),
}


def carries_orders(draft: CardDraft) -> bool:
    return any(a.type == "create" for s in draft.suggestions for a in s.actions)


def order_key(draft: CardDraft) -> tuple[int, str]:
    """Critical, warning, suggestions that carry orders, counselling; then by ID."""
    if draft.indicator is not Indicator.INFO:
        return INDICATOR_RANK[draft.indicator], draft.rec_id
    return (2 if carries_orders(draft) else 3), draft.rec_id


def merge(drafts: Iterable[CardDraft], hook: Hook) -> list[CardDraft]:
    cards = list(drafts)
    if hook is Hook.PATIENT_VIEW:
        cards = _merge_counselling(cards)
        cards = _merge_workup(cards)
    elif hook is Hook.ORDER_SIGN:
        cards = _merge_discouraged_tests(cards)
    return sorted(cards, key=order_key)


def _header(part: CardDraft) -> Text:
    """'E1 (NVOG 2022 E 1): <what the row's card said>' - the carried ID starts the line."""
    return Text(_("%(id)s (%(module)s): %(text)s"),
                {"id": part.rec_id, "module": recommendation(part.rec_id).module, "text": part.summary})


def _unique(items: Iterable) -> tuple:
    seen: list = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return tuple(seen)


def _short(part: CardDraft) -> Text:
    return part.short or Text(SHORT_TOPICS.get(part.rec_id, part.rec_id))


def _take(cards: list[CardDraft], ids: Sequence[str]) -> tuple[list[CardDraft], list[CardDraft]]:
    parts = sorted((c for c in cards if c.rec_id in ids and c.indicator is Indicator.INFO), key=lambda c: ids.index(c.rec_id))
    return parts, [c for c in cards if c not in parts]


def _merge_counselling(cards: list[CardDraft]) -> list[CardDraft]:
    parts, rest = _take(cards, COUNSELLING_IDS)
    if len(parts) < 2 or not any(p.rec_id == "C" for p in parts):
        return cards
    advice: list[Text] = [line for p in parts for line in p.personal]
    for part in parts:
        if part.rec_id == "C":
            continue  # its general points close the card
        advice.append(_header(part))
        advice.extend(part.advice)
    advice.extend(next(p for p in parts if p.rec_id == "C").advice)
    merged = CardDraft(
        rec_id="C",
        indicator=Indicator.INFO,
        summary=Text(_("Counsel after recurrent miscarriage: %(topics)s"), {"topics": tuple(_short(p) for p in parts)}),
        facts=_unique(f for p in parts for f in p.facts),
        advice=tuple(advice),
        links=_unique(link for p in parts for link in p.links),
        carried_ids=_unique(("C", *(i for p in parts for i in p.ids))),
    )
    return [*rest, merged]


def _merge_workup(cards: list[CardDraft]) -> list[CardDraft]:
    parts, rest = _take(cards, WORKUP_IDS)
    if len(parts) < 2:
        return cards
    advice: list[Text] = [line for p in parts for line in p.personal]
    # One suggestion per missing test, every one recommended: a client pre-selects recommended
    # suggestions (CDS Hooks isRecommended), so the whole set is accepted in one click. Reading:
    # issue 16 also asks for an "order all" suggestion, but it would repeat every test's order,
    # and a client that only knows selectionBehavior 'any' (Epic; issue 15) would then create
    # each order twice when all suggestions are accepted: the suggestions must not overlap.
    one_each: list[Suggestion] = []
    for part in parts:
        advice.append(_header(part))
        advice.extend(part.advice)
        for suggestion in part.suggestions:
            creates = [a for a in suggestion.actions if a.type == "create"]
            if len(creates) == 1:
                one_each.append(Suggestion(suggestion.label, tuple(creates), recommended=True))
            else:  # e.g. the missing antiphospholipid tests: one suggestion per test
                one_each.extend(Suggestion(a.description, (a,), recommended=True) for a in creates)
    merged = CardDraft(
        rec_id="D",
        indicator=Indicator.INFO,
        summary=Text(_("Work-up after recurrent miscarriage: order %(tests)s"), {"tests": tuple(_short(p) for p in parts)}),
        facts=_unique(f for p in parts for f in p.facts),
        advice=tuple(advice),
        suggestions=tuple(one_each),
        selection_behavior="any",
        carried_ids=_unique(("D", *(i for p in parts for i in p.ids))),
    )
    return [*rest, merged]


def _merge_discouraged_tests(cards: list[CardDraft]) -> list[CardDraft]:
    parts = [c for c in cards if c.rec_id.startswith("D") and c.indicator is Indicator.WARNING]
    if len(parts) < 2:
        return cards
    rest = [c for c in cards if c not in parts]
    reasons: list[OverrideReason] = []
    for part in parts:
        reasons.extend(r for r in part.override_reasons if r.code not in {x.code for x in reasons})
    advice: list[Text] = []
    for part in parts:
        advice.append(_header(part))
        advice.extend(part.advice)
    removals = tuple(s for p in parts for s in p.suggestions)
    merged = CardDraft(
        rec_id="D",
        indicator=Indicator.WARNING,
        summary=Text(_("%(count)s ordered tests are not recommended in recurrent miscarriage: remove them"), {"count": max(len(removals), len(parts))}),
        facts=_unique(f for p in parts for f in p.facts),
        advice=tuple(advice),
        suggestions=removals,
        selection_behavior="any",
        override_reasons=tuple(reasons),
        carried_ids=_unique(("D", *(i for p in parts for i in p.ids))),
    )
    return [*rest, merged]
