"""Real Dutch (issue 16 item 6): numbers and dates in the card language's style (Babel),
no English words from codes in Dutch cards, Dutch prescription style, a MedicationStatement
is what she takes, and resource references only in the one line of record sources."""

from __future__ import annotations

from datetime import date

import pytest

from cards.i18n import Localized, Quantity, Text, Translator, format_day, format_number, load_translations
from tests.builders import (
    ATC, SNOMED, apl_panel, carried_ids, hook_request, losses, medication_request, observation, prefetch, tsh,
)
from tests.scenarios import SCENARIOS
from tests.test_catalogue import request_for


def card(cds, topic, *resources, hook="patient-view", language="nl", drafts=(), birth="1990-05-01"):
    body = hook_request(hook, drafts=drafts, data=prefetch(*resources, birth=birth))
    return next(c for c in cds.cards(hook, body, language) if topic in carried_ids(c))


def fact_lines(detail: str) -> list[str]:
    return [line for line in detail.split("\n\n")[1].splitlines() if line.startswith("- ")]


@pytest.mark.parametrize("value,nl,en", [(3.5, "3,5", "3.5"), (0.012, "0,012", "0.012"), (1250.0, "1250", "1250"), (2.0, "2", "2")])
def test_numbers_in_the_card_language(value, nl, en):
    assert format_number(value, "nl") == nl and format_number(value, "en") == en


def test_dates_in_the_card_language():
    assert format_day(date(2026, 11, 12), "nl") == "12-11-2026"
    assert format_day(date(2026, 11, 12), "en") == "12 Nov 2026"


def test_translator_formats_parameters_by_type():
    t = Translator(load_translations()["nl"], "nl")
    assert t(Text("%(q)s", {"q": Quantity(4.25, "mIU/L", ">")})) == ">4,25 mIU/L"
    assert t(Text("%(d)s", {"d": date(2026, 1, 5)})) == "05-01-2026"
    assert t(Text("%(x)s", {"x": Localized({"en": "by mouth", "nl": "oraal"})})) == "oraal"


def test_lab_values_and_dates_in_dutch(cds):
    found = card(cds, "D5.1c", losses(2), tsh(5.75, date="2026-11-02", high=4.0, low=0.4))
    assert "TSH: 5,75 mIU/L op 02-11-2026" in found["detail"]
    assert "Referentiewaarden van het lab: 0,4-4" in found["detail"] or "0,4-4 mIU/L" in found["detail"]


def test_antibody_results_say_positief_not_positive(cds):
    first, second = apl_panel("2026-01-05", ("lupus-anticoagulant",)), apl_panel("2026-05-01", ("lupus-anticoagulant",))
    found = card(cds, "E3.2", losses(3), *first, *second)
    assert "Lupus anticoagulans: positief op 05-01-2026" in found["detail"]
    assert "positive" not in found["detail"].lower()


def test_smoking_status_is_not_the_english_snomed_display(cds):
    smoker = observation("72166-2", concept=(SNOMED, "449868002"))
    smoker["valueCodeableConcept"]["coding"][0]["display"] = "Current every day smoker"
    found = card(cds, "C", losses(2), smoker)
    assert "Current every day smoker" not in found["detail"] and "Rookstatus: rookt op 01-06-2026" in found["detail"]


def test_references_leave_the_fact_lines_for_one_sources_line(cds):
    found = card(cds, "D5.1c", losses(2), tsh(5.75, date="2026-11-02", high=4.0, low=0.4, rid="tsh-7"))
    assert not any("Observation/" in line for line in fact_lines(found["detail"]))
    last = found["detail"].splitlines()[-1]
    assert last.startswith("*Uit het dossier: ") and "Observation/tsh-7" in last


def test_a_medication_statement_is_what_she_takes(cds):
    statement = {"resourceType": "MedicationStatement", "id": "ms-pred", "status": "active", "subject": {"reference": "Patient/pat-1"},
                 "medicationCodeableConcept": {"coding": [{"system": ATC, "code": "H02AB06", "display": "prednisolone"}], "text": "prednisolon"}}
    found = card(cds, "E8.3", losses(2), statement)
    assert "Gebruikt: prednisolon" in found["detail"] and "Actieve order" not in found["detail"]
    assert "Takes: prednisolon" in card(cds, "E8.3", losses(2), statement, language="en")["detail"]


def test_an_active_order_stays_an_order(cds):
    order = medication_request(ATC, "H02AB06", status="active", display="prednisolon")
    assert "Gebruikt" not in card(cds, "E8.3", losses(2), order)["detail"]


def test_progesterone_in_dutch_prescription_style(cds):
    scenario = next(s for s in SCENARIOS["E8.6b"] if s.hook == "patient-view" and s.fires)
    cards = cds.cards("patient-view", request_for(scenario), "nl")
    found = next(c for c in cards if c["source"]["topic"]["code"] == "E8.6b")
    assert "2 dd 400 mg" in found["summary"]
    description = found["suggestions"][0]["actions"][0]["description"]
    assert "2 dd 400 mg vaginaal tot " in description and "tweemaal" not in description


def test_the_replace_card_says_the_draft_dose_differs(cds):
    scenario = next(s for s in SCENARIOS["E8.6b"] if s.hook == "order-sign" and s.fires)
    cards = cds.cards("order-sign", request_for(scenario), "nl")
    found = next(c for c in cards if c["source"]["topic"]["code"] == "E8.6b")
    assert "wijkt af van het aanbevolen 2 dd 400 mg vaginaal" in found["detail"]


def test_lmwh_in_dutch(cds):
    scenario = next(s for s in SCENARIOS["E3.2"] if s.fires)
    pregnant = [*scenario.resources, observation("82810-3", concept=(SNOMED, "77386006"), date="2026-11-20")]
    found = card(cds, "E3.2", *pregnant)
    labels = [s["label"] for s in found["suggestions"]]
    assert "Schrijf profylactisch laagmoleculaire heparine (LMWH) voor" in labels


def test_an_unknown_tsh_unit_does_not_contradict_itself(cds):
    odd = tsh(2.1, date="2026-10-01", unit="mU/dL")
    found = card(cds, "D5.1a", losses(2), odd, language="en")
    assert "No TSH result on record" not in found["detail"]
    assert "No TSH in a known unit in the last 12 months" in found["detail"]
    assert "recorded in an unknown unit (mU/dL)" in found["detail"]


def test_e6_3_dutch_wording(cds):
    scenario = next(s for s in SCENARIOS["E6.3"] if s.fires)
    cards = cds.cards("patient-view", request_for(scenario), "nl")
    found = next(c for c in cards if c["source"]["topic"]["code"] == "E6.3")
    assert "controleer de cervixlengte echoscopisch" in found["summary"]
