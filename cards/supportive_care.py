"""S - Supportive care from the patient leaflets in the seeds.

S1 (Flouria 2025): about 1 in 3 women has anxiety, depression or
  post-traumatic stress after a miscarriage, mostly in the first six months;
  offer psychological and couple support and peer groups. When: any recorded
  miscarriage. Then: counsel with links to the support organisations the
  seeds name (Freya 2016, AZ Turnhout 2024). Version 2: within 12 months of
  the last recorded loss (cards/timing.py).
S2 (AZ Turnhout 2024; Freya 2016): in a new pregnancy after a miscarriage,
  offer an early ultrasound at 6-7 weeks and an extra first-trimester scan
  (Freya: from 7-8 weeks). When: current pregnancy before 14 weeks (the first
  trimester; gestational age must be known), not ectopic, and >= 1 previous
  miscarriage. Version 2: only before 8 weeks, or while no ultrasound of this
  pregnancy is recorded (PregnancyFacts.ultrasound_source); never with an E8.6c
  finding (non-viable, ectopic): the scan the card offers has then been made.
S4 (AZ Turnhout 2024): after a diagnosed missed miscarriage: expectant
  management, misoprostol or vacuum aspiration; decide together. When: an
  active missed-miscarriage Condition.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from fhir_mappings.facts import PatientFacts

from .common import loss_fact, when
from .i18n import Localized, Text, _
from .model import CardDraft, Indicator, Link, RuleContext

FIRST_TRIMESTER_DAYS = 14 * 7
EARLY_SCAN_UNTIL_DAYS = 8 * 7  # S2 fires before 8 weeks even after a scan

# Support organisations per region, as the catalogue lists them (S1): the Netherlands from
# Freya 2016 section 9.1, Belgium from AZ Turnhout 2024 "Websites". The seeds name none for
# the United States: no links there rather than invented ones.
SUPPORT_LINKS = {
    "nl": (
        Link(Text(_("Freya: patient association for fertility problems, including recurrent miscarriage")), "https://www.freya.nl/"),
        Link(Text(_("Erfocentrum: information on heredity and pregnancy")), "https://www.erfocentrum.nl/"),
        Link(Text(_("Landelijk Steunpunt Rouw: grief and bereavement support")), "https://www.landelijksteunpuntrouw.nl/"),
        Link(Text(_("Vereniging Ouders van een Overleden Kind: peer support")), "https://www.vook.nl/"),
    ),
    "be": (
        Link(Text(_("Steunpunt Nova: information and support after a miscarriage")), "https://www.steunpuntnova.nl/"),
        Link(Text(_("Faranet: support after the loss of a pregnancy or baby")), "https://www.faranet.be/"),
        Link(Text(_("Met Lege Handen: self-help group for parents")), "https://www.metlegehanden.be/"),
        Link(Text(_("Berrefonds: talk groups and activities for parents")), "https://www.berrefonds.be/"),
    ),
}


def s1(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    if facts.losses < 1:
        return
    yield CardDraft(
        rec_id="S1",
        indicator=Indicator.INFO,
        summary=Text(_("After a miscarriage, 1 in 3 women has anxiety, depression or PTSD symptoms: offer support")),
        facts=(loss_fact(facts),),
        advice=(
            Text(_("About one in three women has anxiety, depression or post-traumatic stress symptoms after a miscarriage, mostly in the first six months.")),
            Text(_("Ask how she and her partner are coping; offer psychological support, couple support and peer groups.")),
        ),
        links=SUPPORT_LINKS.get(ctx.department.region, ()),
    )


def s2(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    pregnancy = facts.pregnancy
    ga = pregnancy.gestational_age_days
    if not pregnancy.ongoing or pregnancy.contraindications or ga is None or ga >= FIRST_TRIMESTER_DAYS or facts.losses < 1:
        return
    if ga >= EARLY_SCAN_UNTIL_DAYS and pregnancy.ultrasound_source is not None:
        return  # the early scan has been made
    yield CardDraft(
        rec_id="S2",
        indicator=Indicator.INFO,
        summary=Text(_("New pregnancy after a miscarriage: offer an early ultrasound at 6-7 weeks")),
        facts=(
            loss_fact(facts),
            Text(_("Gestational age today: %(ga)s weeks (%(source)s)"), {"ga": pregnancy.gestational_age_text, "source": pregnancy.gestational_age_source}),
        ),
        advice=(
            Text(_("Offer an early ultrasound at 6-7 weeks and an extra scan in the first trimester; it does not change the outcome but gives an early moment of contact.")),
        ),
    )


def s4(facts: PatientFacts, ctx: RuleContext) -> Iterator[CardDraft]:
    missed = facts.active_condition("missed-miscarriage")
    if missed is None:
        return
    yield CardDraft(
        rec_id="S4",
        indicator=Indicator.INFO,
        summary=Text(_("Missed miscarriage: discuss waiting, misoprostol or vacuum aspiration")),
        facts=(Text(_("Missed miscarriage on %(date)s (%(source)s)"), {"date": when(missed.onset or missed.recorded), "source": missed.source}),),
        advice=_missed_miscarriage_management(ctx),
    )


# AZ Turnhout 2024: the management options of a Belgian hospital's leaflet. A department
# replaces them with its own protocol (RPL_MISSED_MISCARRIAGE_PROTOCOL_FILE).
MISSED_MISCARRIAGE_OPTIONS = (
    _("Expectant management: wait for the miscarriage to happen by itself."),
    _("Misoprostol: 4 tablets of 200 µg (800 µg) vaginally, repeated after 24 hours if needed; works in about 75-85%%; follow-up scan after one week."),
    _("Vacuum aspiration: perforation in about 1%%, Asherman syndrome in about 0.1%%, retained tissue in about 1%%."),
)


def _missed_miscarriage_management(ctx: RuleContext) -> tuple:
    protocol = ctx.department.missed_miscarriage_protocol
    if protocol:
        return (*protocol, Text(_("Choose together with the woman.")))
    return (*(Text(line) for line in MISSED_MISCARRIAGE_OPTIONS), Text(_("Choose together with the woman.")))


class ProtocolFileError(ValueError):
    """A department protocol file that cannot be used; raised at start-up."""


def load_missed_miscarriage_protocol(path: Path) -> tuple[Text, ...]:
    """The department's S4 management text: JSON {"nl": [lines], "en": [lines]}, the same number of lines."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProtocolFileError(f"{path}: {exc}") from None
    if not isinstance(data, dict) or not data or not all(
        isinstance(lines, list) and lines and all(isinstance(x, str) and x.strip() for x in lines) for lines in data.values()
    ):
        raise ProtocolFileError(f'{path}: expected {{"nl": ["line", ...], "en": ["line", ...]}}')
    counts = {len(lines) for lines in data.values()}
    if len(counts) != 1:
        raise ProtocolFileError(f"{path}: every language needs the same number of lines")
    languages = list(data)
    return tuple(
        Text("%(line)s", {"line": Localized({language: data[language][n] for language in languages})})
        for n in range(counts.pop())
    )
