"""The governance report equals counts made independently, in SQL, from the stored rows."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from service import create_app
from service.cli import main
from service.override_reasons import NO_REASON, PROJECT_REASONS
from service.report import COLUMNS, build_report, render
from tests import governance_week
from tests.conftest import TODAY, make_settings
from tests.test_feedback_postgres import postgres_url  # noqa: F401 - the throw-away PostgreSQL server

SINCE = datetime(2026, 11, 16, tzinfo=timezone.utc)
UNTIL = datetime(2026, 11, 30, tzinfo=timezone.utc)
WEEK_OF_DAY = {(date(2026, 11, 16) + timedelta(days=d)).isoformat(): "2026-W47" if d < 7 else "2026-W48" for d in range(14)}

# The latest feedback item of each card (by outcomeTimestamp, then id), in SQL.
LATEST_FEEDBACK = """
SELECT f.card_uuid, f.outcome, f.override_code FROM feedback f
WHERE NOT EXISTS (SELECT 1 FROM feedback g WHERE g.card_uuid = f.card_uuid
                  AND (g.outcome_timestamp > f.outcome_timestamp OR (g.outcome_timestamp = f.outcome_timestamp AND g.id > f.id)))
"""


def independent_counts(engine) -> dict[tuple[str, str], dict]:
    """Per (ID, ISO week): what the report should say, from SQL over the stored rows."""
    query = sa.text(f"""
        SELECT r.recommendation_id AS rec, CAST(c.issued_at AS VARCHAR(40)) AS issued, c.disposition AS disposition,
               l.outcome AS outcome, l.override_code AS code, COUNT(*) AS n
        FROM issued_card c
        JOIN issued_card_recommendation r ON r.card_id = c.id
        LEFT JOIN ({LATEST_FEEDBACK}) l ON l.card_uuid = c.card_uuid
        WHERE c.issued_at >= :since AND c.issued_at < :until
        GROUP BY r.recommendation_id, CAST(c.issued_at AS VARCHAR(40)), c.disposition, l.outcome, l.override_code
    """)
    counts: dict[tuple[str, str], dict] = defaultdict(lambda: {"shown": 0, "silent": 0, "suppressed": 0, "accepted": 0,
                                                                "overridden": 0, "no_feedback": 0, "reasons": Counter()})
    with engine.connect() as connection:
        for row in connection.execute(query, {"since": SINCE, "until": UNTIL}):
            week = WEEK_OF_DAY[row.issued[:10]]  # every generated card is issued between 09:00 and 15:00 UTC
            entry = counts[(row.rec, week)]
            entry[row.disposition] += row.n
            if row.disposition != "shown":
                continue
            if row.outcome is None:
                entry["no_feedback"] += row.n
            elif row.outcome == "accepted":
                entry["accepted"] += row.n
            else:
                entry["overridden"] += row.n
                entry["reasons"][row.code or NO_REASON] += row.n
    return dict(counts)


def report_counts(report) -> dict[tuple[str, str], dict]:
    return {(row.recommendation, row.week): {"shown": row.shown, "silent": row.silent, "suppressed": row.suppressed,
                                             "accepted": row.accepted, "overridden": row.overridden,
                                             "no_feedback": row.no_feedback, "reasons": Counter(row.reasons)}
            for row in report.rows}


@pytest.fixture(params=["sqlite", "postgresql"])
def generated(request, tmp_path):
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else f"sqlite:///{tmp_path / 'g.sqlite3'}"
    app = create_app(make_settings(tmp_path, database_url=url, silent_recommendations=governance_week.SILENT),
                     today=lambda: TODAY)
    engine = app.extensions["rpl"].feedback.engine
    with engine.begin() as connection:  # the PostgreSQL server is shared by the module's tests
        for table in ("issued_card_recommendation", "issued_card", "feedback"):
            connection.execute(sa.text(f"DELETE FROM {table}"))
    governance_week.generate(app)
    yield app, url
    app.extensions["rpl"].close()


def test_the_report_equals_independent_counts_of_the_stored_rows(generated):
    app, _url = generated
    engine = app.extensions["rpl"].feedback.engine
    report = build_report(engine, SINCE, UNTIL)
    expected = independent_counts(engine)
    assert report_counts(report) == expected
    # The generated data exercises every column: otherwise an equality of zeros proves little.
    totals = Counter()
    for entry in expected.values():
        totals.update({k: v for k, v in entry.items() if k != "reasons"})
    assert all(totals[k] > 0 for k in ("shown", "silent", "accepted", "overridden", "no_feedback")), totals
    assert {"2026-W47", "2026-W48"} == {week for _, week in expected}
    assert report.unknown_card_feedback == len(governance_week.UNKNOWN_CARDS)
    for row in report.rows:
        assert row.accepted + row.overridden + row.no_feedback == row.shown
        if row.shown:
            assert row.acceptance_rate == row.accepted / row.shown and row.override_rate == row.overridden / row.shown


def test_cards_before_the_period_are_not_counted(generated):
    app, _url = generated
    report = build_report(app.extensions["rpl"].feedback.engine, SINCE, UNTIL)
    assert all(row.week in ("2026-W47", "2026-W48") for row in report.rows)
    earlier = build_report(app.extensions["rpl"].feedback.engine, SINCE - timedelta(days=7), UNTIL)
    assert {row.week for row in earlier.rows} == {"2026-W46", "2026-W47", "2026-W48"}


def test_the_report_command_writes_csv_markdown_and_html(generated, tmp_path, capsys):
    app, url = generated
    report = build_report(app.extensions["rpl"].feedback.engine, SINCE, UNTIL)
    out = tmp_path / "report.csv"
    assert main(["report", "--since", "2026-11-16", "--until", "2026-11-30", "--format", "csv",
                 "--database-url", url, "--output", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == len(report.rows)
    for row, expected in zip(rows, report.rows):
        assert (row["recommendation"], row["week"]) == (expected.recommendation, expected.week)
        assert [int(row[k]) for k in ("shown", "silent", "accepted", "overridden", "no_feedback")] == [
            expected.shown, expected.silent, expected.accepted, expected.overridden, expected.no_feedback]
        assert row["override_rate"] == ("" if expected.override_rate is None else f"{expected.override_rate:.4f}")

    assert main(["report", "--since", "2026-11-16", "--until", "2026-11-30", "--database-url", url]) == 0
    markdown = capsys.readouterr().out
    assert "| recommendation | week | shown |" in markdown and "## Override reasons" in markdown
    assert f"| {report.rows[0].recommendation} | {report.rows[0].week} | {report.rows[0].shown} |" in markdown

    page = render(report, "html")
    assert len(re.findall(r'<img id="chart-(firing|override_rate|reasons)"[^>]* src="data:image/svg\+xml;base64,', page)) == 3


def test_the_report_command_refuses_bad_dates(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--since", "last week"])
    assert "not a date" in capsys.readouterr().err
    assert main(["report", "--since", "2026-11-16", "--until", "2026-11-01"]) == 2


def test_the_purge_command_needs_a_number_of_days(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("RPL_RETENTION_DAYS", raising=False)
    url = f"sqlite:///{tmp_path / 'p.sqlite3'}"
    assert main(["purge", "--database-url", url]) == 2
    assert main(["purge", "--database-url", url, "--older-than-days", "30"]) == 0
    assert '"feedback": 0' in capsys.readouterr().out


def test_every_override_reason_the_cards_offer_is_in_the_code_table():
    root = Path(__file__).parent.parent / "cards"
    used = set()
    for source in root.glob("*.py"):
        used |= set(re.findall(r'override\(\s*"([a-z0-9-]+)"', source.read_text(encoding="utf-8")))
    assert used and used <= set(PROJECT_REASONS), used - set(PROJECT_REASONS)


def test_a_report_of_a_new_database_is_empty(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'new.sqlite3'}"
    assert main(["report", "--since", "2026-11-16", "--format", "csv", "--database-url", url]) == 0
    assert capsys.readouterr().out.strip() == ",".join(COLUMNS)
    assert main(["report", "--since", "2026-11-16", "--format", "html", "--database-url", url,
                 "--output", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").read_text().count('src="data:image/svg+xml;base64,') == 3
