"""Sources (issue 16 item 7): each card links its module's own page where one is known,
otherwise the guideline page with the module in the label; S1 has a URL and links the
support organisations of the configured region; S4 names misoprostol's strength and a
department replaces its management text with its own protocol."""

from __future__ import annotations

import json

import pytest

from cards.catalog import CATALOGUE, MODULE_PAGES, NVOG_2022
from service import create_app
from service.config import ConfigError
from tests.builders import SNOMED, condition, ft4, hook_request, losses, miscarriage, prefetch, tsh
from tests.conftest import TODAY, make_settings

GUIDELINE = NVOG_2022.url


def card(cds, topic, *resources, hook="patient-view", language="en"):
    cards = cds.cards(hook, hook_request(hook, data=prefetch(*resources)), language)
    return next(c for c in cards if c["source"]["topic"]["code"] == topic)


def test_module_pages_are_pages_of_the_guideline():
    for rec_id, url in MODULE_PAGES.items():
        assert rec_id in CATALOGUE
        assert url.startswith(GUIDELINE) and url.endswith(".html") and url != GUIDELINE


def test_a_card_with_its_own_module_page_links_it(cds):
    thyroid = card(cds, "E5.1b", losses(2), tsh(12.0), ft4(15.0, low=12, high=22))
    assert thyroid["source"]["url"].endswith("/behandeling_van_herhaalde_miskramen_met_metabole_of_endocriene_afwijkingen/schildklieraandoeningen.html")
    assert thyroid["source"]["label"].endswith("module E5.1")


def test_a_card_without_a_module_page_links_the_guideline_and_names_the_module(cds):
    workup = card(cds, "D", losses(2))
    assert workup["source"]["url"] == GUIDELINE
    assert workup["source"]["label"] == "NVOG 2022 Herhaalde miskraam (ESHRE 2022), module D1-7"


def test_every_row_has_a_url_and_guideline_rows_name_their_module():
    for rec in CATALOGUE.values():
        assert rec.url, rec.id
        if rec.source is NVOG_2022:
            assert ", module " in rec.source_label


def test_s1_has_a_url_and_the_dutch_support_organisations(cds):
    s1 = card(cds, "S1", miscarriage("2026-09-01"))  # after a single loss S1 is a card of its own
    assert s1["source"]["url"].startswith("https://flouria.health/")
    urls = [link["url"] for link in s1["links"]]
    assert urls == ["https://www.freya.nl/", "https://www.erfocentrum.nl/", "https://www.landelijksteunpuntrouw.nl/",
                    "https://www.vook.nl/"]


@pytest.mark.parametrize("region,expected", [
    ("be", {"https://www.steunpuntnova.nl/", "https://www.faranet.be/", "https://www.metlegehanden.be/",
            "https://www.berrefonds.be/"}),
    ("us", set()),  # the seeds name no American organisations
])
def test_s1_links_follow_the_region(tmp_path, region, expected):
    app = create_app(make_settings(tmp_path, region=region), today=lambda: TODAY)
    body = hook_request("patient-view", data=prefetch(miscarriage("2026-09-01")))
    cards = app.test_client().post("/cds-services/rpl-patient-view", json=body).get_json()["cards"]
    app.extensions["rpl"].close()
    s1 = next(c for c in cards if c["source"]["topic"]["code"] == "S1")
    assert {link["url"] for link in s1.get("links") or []} == expected


MISSED = condition(SNOMED, "16607004", onset="2026-11-20", display="Missed miscarriage")


def test_s4_names_the_misoprostol_strength(cds):
    s4 = card(cds, "S4", losses(1), MISSED)
    assert "4 tablets of 200 µg (800 µg) vaginally" in s4["detail"]
    assert "4 tabletten van 200 µg (800 µg) vaginaal" in card(cds, "S4", losses(1), MISSED, language="nl")["detail"]


def test_a_department_replaces_the_s4_management_text(tmp_path):
    protocol = tmp_path / "protocol.json"
    protocol.write_text(json.dumps({"nl": ["Bespreek het afdelingsprotocol miskraam (versie 2026).", "Misoprostol volgens protocol."],
                                    "en": ["Discuss the department's miscarriage protocol (2026).", "Misoprostol per protocol."]}))
    app = create_app(make_settings(tmp_path, missed_miscarriage_protocol_file=protocol), today=lambda: TODAY)
    body = hook_request("patient-view", data=prefetch(losses(1), MISSED))
    client = app.test_client()
    details = {}
    for language in ("en", "nl"):
        cards = client.post("/cds-services/rpl-patient-view", json=body, headers={"Accept-Language": language}).get_json()["cards"]
        details[language] = next(c for c in cards if c["source"]["topic"]["code"] == "S4")["detail"]
    app.extensions["rpl"].close()
    assert "Discuss the department's miscarriage protocol (2026)." in details["en"]
    assert "Bespreek het afdelingsprotocol miskraam (versie 2026)." in details["nl"]
    assert "800 µg" not in details["en"] and "Vacuum aspiration" not in details["en"]


@pytest.mark.parametrize("content", ['{"nl": ["a"], "en": ["a", "b"]}', '{"nl": []}', "not json", '["a"]'])
def test_a_bad_protocol_file_stops_the_start(tmp_path, content):
    protocol = tmp_path / "protocol.json"
    protocol.write_text(content)
    with pytest.raises(ConfigError, match="RPL_MISSED_MISCARRIAGE_PROTOCOL_FILE"):
        create_app(make_settings(tmp_path, missed_miscarriage_protocol_file=protocol), today=lambda: TODAY)
