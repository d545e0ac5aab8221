"""Card drafts -> CDS Hooks cards, in the caller's language.

Adds what every card carries: a uuid for feedback, the source block with the
catalogue ID as topic, a Markdown detail (facts used, recommendation, module).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from cards.catalog import OVERRIDE_REASON_SYSTEM, TOPIC_SYSTEM, recommendation
from cards.i18n import Text, Translator, _
from cards.model import CardDraft

from .protocol import Action, Card, Coding, Link, Source, Suggestion

UuidFactory = Callable[[], str]
# The catalogue rows a card carries (a merged card carries several): for feedback and audit,
# and for a client that wants to know. Card.extension, key in reverse-domain style.
CARRIED_IDS_EXTENSION = "org.rpl-cds.carried-ids"

# Headings of the card detail (outside f-strings, where pybabel extract finds them).
BASED_ON = _("Based on")
RECOMMENDATION = _("Recommendation")
SOURCE = _("Source")
RECORD_SOURCES = _("From the record")

# Parameters that name the record's resources (Observation/123): kept out of the visible fact
# lines and listed once, at the end of the detail, where the EHR shows them small.
REFERENCE_PARAMS = frozenset({"source", "sources", "ref"})
_REF = "\x00"


def _without_references(text: Text, found: list[str]) -> Text:
    params = {}
    for key, value in text.params.items():
        if key in REFERENCE_PARAMS:
            for ref in (value if isinstance(value, tuple) else str(value or "").split(", ")):
                if ref and ref not in found:
                    found.append(str(ref))
            params[key] = _REF
        elif isinstance(value, Text):
            params[key] = _without_references(value, found)
        else:
            params[key] = value
    return Text(text.msgid, params)


def fact_line(fact: Text, t: Translator, found: list[str]) -> str:
    """A fact in words only; its resource references go to ``found``."""
    line = t(_without_references(fact, found))
    line = re.sub(r"\s*\(\x00\)", "", line)  # "on 12-11-2026 (Observation/1)" -> "on 12-11-2026"
    line = re.sub(r":\s*\x00\)", ")", line)  # "(from obstetric history: Observation/1)"
    return line.replace(_REF, "").strip()


def _translate_resource(value: Any, t: Translator) -> Any:
    if isinstance(value, Text):
        return t(value)
    if isinstance(value, dict):
        return {k: _translate_resource(v, t) for k, v in value.items()}
    if isinstance(value, list):
        return [_translate_resource(v, t) for v in value]
    return value


def _md_escape(text: str) -> str:
    # Data from the record goes into Markdown: keep it from becoming markup or links.
    for char in "\\`*_[]<>#|":
        text = text.replace(char, "\\" + char)
    return text


def detail(draft: CardDraft, t: Translator) -> str:
    rec = recommendation(draft.rec_id)
    lines = [f"**{t(BASED_ON)}**", ""]
    references: list[str] = []
    lines += [f"- {_md_escape(fact_line(fact, t, references))}" for fact in draft.facts]
    lines += ["", f"**{t(RECOMMENDATION)}**", ""]
    advice = [t(a) for a in (*draft.personal, *draft.advice)]
    lines += [f"- {a}" for a in advice] if len(advice) > 1 else advice
    # External links are not in the Markdown: a link there replaces the EHR page in the sandbox (and
    # in EHRs that render detail in their own frame). They go into card.links (type absolute), which
    # clients open beside the EHR.
    lines += ["", f"*{t(SOURCE)}: {rec.module} ({draft.rec_id}: {t(rec.title_text)})*"]
    if references:
        lines += ["", f"*{t(RECORD_SOURCES)}: {_md_escape(', '.join(references))}*"]
    return "\n".join(lines)


SUMMARY_MAX = 139  # the spec: a "<140-character" summary


def _summary(text: str) -> str:
    """Summaries are tested to fit; a long value in a parameter must still never break the card."""
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1].rstrip() + "…"


def render_card(draft: CardDraft, t: Translator, new_uuid: UuidFactory) -> Card:
    rec = recommendation(draft.rec_id)
    suggestions = [
        Suggestion(
            label=t(s.label),
            uuid=new_uuid(),
            isRecommended=True if s.recommended else None,
            actions=[
                Action(
                    type=a.type,
                    description=t(a.description),
                    resource=_translate_resource(dict(a.resource), t) if a.resource is not None else None,
                    resourceId=a.resource_id,
                )
                for a in s.actions
            ] or None,
        )
        for s in draft.suggestions
    ]
    return Card(
        uuid=new_uuid(),
        summary=_summary(t(draft.summary)),
        detail=detail(draft, t),
        indicator=draft.indicator.value,
        source=Source(
            label=rec.source_label,
            url=rec.url,
            topic=Coding(system=TOPIC_SYSTEM, code=draft.rec_id, display=t(rec.title_text)),
        ),
        suggestions=suggestions or None,
        selectionBehavior=draft.selection_behavior if suggestions else None,
        overrideReasons=[
            Coding(system=OVERRIDE_REASON_SYSTEM, code=r.code, display=t(r.display)) for r in draft.override_reasons
        ]
        or None,
        links=[Link(label=t(link.label), url=link.url, type="absolute") for link in draft.links] or None,
        extension={CARRIED_IDS_EXTENSION: list(draft.ids)},
    )
