"""Dutch and English: every card text has a Dutch translation with the same
placeholders, and every firing card reads differently in Dutch, with a
summary under 140 characters in both languages."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from tests.builders import carried_ids
from tests.scenarios import ALL, Scenario
from tests.test_catalogue import request_for

ROOT = Path(__file__).parent.parent
PO_FILE = ROOT / "cards" / "locales" / "nl" / "LC_MESSAGES" / "cards.po"
PLACEHOLDER = re.compile(r"%\(\w+\)s|%%")


def msgids_in_code() -> set[str]:
    found = set()
    for path in [*ROOT.joinpath("cards").glob("*.py"), ROOT / "service" / "render.py"]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_"
                    and node.args and isinstance(node.args[0], ast.Constant)):
                found.add(node.args[0].value)
    return found


def dutch_catalogue() -> dict[str, str]:
    with PO_FILE.open("rb") as fp:
        return {m.id: m.string for m in read_po(fp) if m.id}


def test_every_text_in_code_has_a_dutch_translation():
    catalogue = dutch_catalogue()
    missing = sorted(m for m in msgids_in_code() if not catalogue.get(m))
    assert not missing, f"untranslated (run pybabel extract/update, then translate): {missing[:10]}"


def test_translations_keep_the_placeholders():
    for msgid, msgstr in dutch_catalogue().items():
        assert sorted(PLACEHOLDER.findall(msgid)) == sorted(PLACEHOLDER.findall(msgstr)), msgid


@pytest.mark.parametrize("scenario", [s for s in ALL if s.fires], ids=lambda s: s.id)
def test_card_in_dutch_and_english(cds, scenario: Scenario):
    topic = scenario.extra.get("topic", scenario.rec_id)
    cards = {}
    for language in ("en", "nl"):
        by_topic = {rec_id: c for c in cds.cards(scenario.hook, request_for(scenario), language=language)
                    for rec_id in reversed(carried_ids(c))}
        cards[language] = by_topic[topic]
        assert len(cards[language]["summary"]) < 140, cards[language]["summary"]
    nl, en = cards["nl"], cards["en"]
    assert nl["summary"] != en["summary"] and nl["detail"] != en["detail"]
    assert "Op basis van" in nl["detail"] and "Based on" in en["detail"]
    for s_nl, s_en in zip(nl.get("suggestions", []), en.get("suggestions", [])):
        assert s_nl["label"] != s_en["label"]
    for r_nl, r_en in zip(nl.get("overrideReasons", []), en.get("overrideReasons", [])):
        assert r_nl["display"] != r_en["display"]


def test_default_language_is_the_setting(tmp_path):
    from service import create_app
    from tests.builders import hook_request, losses
    from tests.conftest import make_settings

    app = create_app(make_settings(tmp_path, language="nl"))
    response = app.test_client().post("/cds-services/rpl-patient-view", json=hook_request("patient-view", losses(2)))
    assert "Op basis van" in response.get_json()["cards"][0]["detail"]
    app.extensions["rpl"].close()


def test_an_overlong_summary_is_shortened_not_a_crash():
    from service.render import SUMMARY_MAX, _summary

    assert len(_summary("x" * 500)) == SUMMARY_MAX and _summary("x" * 500).endswith("…")
    assert _summary("short") == "short"


@pytest.mark.parametrize("header,expected", [("nl-BE", "Op basis van"), ("en-US,en;q=0.9", "Based on"),
                                             ("de-DE", "Based on"), ("*", "Based on"), ("fr, nl;q=0.5", "Op basis van")])
def test_accept_language_chooses(cds, header, expected):
    from tests.builders import hook_request, losses

    response = cds.client.post("/cds-services/rpl-patient-view", json=hook_request("patient-view", losses(2)),
                               headers={"Accept-Language": header})
    assert expected in response.get_json()["cards"][0]["detail"]
