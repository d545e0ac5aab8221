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

from collections.abc import Iterator

from fhir_mappings.facts import PatientFacts

from .common import loss_fact, when
from .i18n import Text, _
from .model import CardDraft, Indicator, Link, RuleContext

FIRST_TRIMESTER_DAYS = 14 * 7
EARLY_SCAN_UNTIL_DAYS = 8 * 7  # S2 fires before 8 weeks even after a scan

# Support organisations named in the seeds (Freya 2016 section 9.1; AZ Turnhout 2024 "Websites").
SUPPORT_LINKS = (
    Link(Text(_("Steunpunt Nova: information and support after a miscarriage (NL)")), "https://www.steunpuntnova.nl"),
    Link(Text(_("Landelijk Steunpunt Rouw: grief and bereavement support (NL)")), "https://www.landelijksteunpuntrouw.nl"),
    Link(Text(_("Vereniging Ouders van een Overleden Kind: peer support (NL)")), "https://www.vook.nl"),
    Link(Text(_("Berrefonds: talk groups and activities for parents (BE)")), "https://www.berrefonds.be"),
    Link(Text(_("Met Lege Handen: self-help group for parents (BE)")), "https://www.metlegehanden.be"),
)


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
        links=SUPPORT_LINKS,
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
        advice=(
            Text(_("Expectant management: wait for the miscarriage to happen by itself.")),
            Text(_("Misoprostol: 4 tablets vaginally, repeated after 24 hours if needed; works in about 75-85%%; follow-up scan after one week.")),
            Text(_("Vacuum aspiration: perforation in about 1%%, Asherman syndrome in about 0.1%%, retained tissue in about 1%%.")),
            Text(_("Choose together with the woman.")),
        ),
    )
