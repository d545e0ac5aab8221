"""A generated fortnight of hook calls and feedback, through the HTTP API, for the report and dashboard tests.

Cards are moved to the day they stand for by setting issued_at of the rows each
call recorded (calls happen now). Feedback is random but seeded: none,
accepted, overridden with one of three reasons, overridden then accepted
later, and resent items; plus feedback on cards this service never issued.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from service.feedback import issued_card_table
from tests.builders import hook_request, losses, progesterone_order, tsh

FIRST_DAY = datetime(2026, 11, 16, 12, 0, tzinfo=timezone.utc)  # Monday of 2026-W47
DAYS = 14  # 2026-W47 and 2026-W48
BEFORE = datetime(2026, 11, 12, 12, 0, tzinfo=timezone.utc)  # 2026-W46: outside the report's period
REASON_SYSTEM = "http://rpl-cds.org/fhir/CodeSystem/override-reason"
REASONS = ("other-indication", "research-protocol", None)  # None: overridden without a reason
UNKNOWN_CARDS = ("never-issued-1", "never-issued-2")
SILENT = "D6"  # run silently: recorded, never returned


def _scenario(rng: random.Random, n: int) -> dict:
    pid = f"gen-{n % 7}"
    kind = rng.randrange(3)
    history = {**losses(2 + n % 2, pid=pid), "id": f"history-{pid}"}
    if kind == 0:
        return hook_request("patient-view", history, pid=pid)
    if kind == 1:
        return hook_request("patient-view", history, {**tsh(6.0, pid=pid), "id": f"tsh-{pid}"}, pid=pid)
    return hook_request("order-select", history, pid=pid, drafts=(progesterone_order(rid=f"p-{n}", pid=pid),))


def _feedback(rng: random.Random, card: dict, at: datetime) -> list[dict]:
    stamp = (at + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (at + timedelta(minutes=9)).strftime("%Y-%m-%dT%H:%M:%SZ")
    suggestions = card.get("suggestions") or []

    def overridden(when: str) -> dict:
        code = rng.choice(REASONS)
        item = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": when}
        if code:
            item["overrideReason"] = {"reason": {"system": REASON_SYSTEM, "code": code}}
        return item

    def accepted(when: str) -> dict:
        return {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": when,
                "acceptedSuggestions": [{"id": suggestions[0]["uuid"]}]}

    choice = rng.randrange(5)
    if choice == 0:
        return []
    if choice == 1 and suggestions:
        return [accepted(stamp)]
    if choice == 2 and suggestions:
        return [overridden(stamp), accepted(later)]  # changed their mind: the latest counts
    item = overridden(stamp)
    return [item, item] if choice == 3 else [item]  # resent: stored once


def generate(app, seed: int = 17, calls: int = 40) -> None:
    """Runs the calls and feedback through the app's HTTP API and dates the recorded cards."""
    rng = random.Random(seed)
    client = app.test_client()
    engine = app.extensions["rpl"].feedback.engine
    plan = [BEFORE] + [FIRST_DAY + timedelta(days=rng.randrange(DAYS), hours=rng.randrange(-3, 4)) for _ in range(calls)]
    for n, at in enumerate(plan):
        with engine.connect() as connection:
            last_id = connection.execute(sa.select(sa.func.coalesce(sa.func.max(issued_card_table.c.id), 0))).scalar_one()
        body = _scenario(rng, n)
        response = client.post(f"/cds-services/rpl-{body['hook']}", json=body)
        assert response.status_code == 200, response.get_data(as_text=True)
        with engine.begin() as connection:
            connection.execute(issued_card_table.update().where(issued_card_table.c.id > last_id).values(issued_at=at))
        for card in response.get_json()["cards"]:
            assert card["source"]["topic"]["code"] != SILENT
            items = _feedback(rng, card, at)
            if items:
                r = client.post(f"/cds-services/rpl-{body['hook']}/feedback", json={"feedback": items})
                assert r.status_code == 200
    r = client.post("/cds-services/rpl-patient-view/feedback", json={"feedback": [
        {"card": uuid, "outcome": "overridden", "outcomeTimestamp": "2026-11-20T10:00:00Z"} for uuid in UNKNOWN_CARDS]})
    assert r.json["stored"] == len(UNKNOWN_CARDS)
