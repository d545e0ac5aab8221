"""The governance report: per recommendation and per ISO week, what its cards did.

Read from the governance tables (service/feedback.py): cards shown, silent
and suppressed; of the shown ones accepted, overridden (by reason) or without
feedback; acceptance and override rates. A card that carries several
catalogue IDs counts for each. A card's outcome is its latest feedback
(by outcomeTimestamp): a clinician may first override and later accept.

Formats: Markdown, CSV, and HTML with matplotlib charts (SVG) inside, which
the dashboard (/admin/) serves too.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone

import sqlalchemy as sa

from .feedback import SHOWN, SILENT, SUPPRESSED, feedback_table, issued_card_recommendation_table, issued_card_table
from .override_reasons import reason_label

FORMATS = ("markdown", "csv", "html")


@dataclass
class WeekRow:
    recommendation: str
    week: str  # ISO week of issue, e.g. 2026-W48 (UTC)
    shown: int = 0
    silent: int = 0
    suppressed: int = 0
    accepted: int = 0
    overridden: int = 0
    no_feedback: int = 0
    reasons: Counter = field(default_factory=Counter)

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.shown if self.shown else None

    @property
    def override_rate(self) -> float | None:
        return self.overridden / self.shown if self.shown else None


@dataclass(frozen=True)
class Report:
    since: datetime
    until: datetime
    rows: tuple[WeekRow, ...]  # by recommendation, then week
    unknown_card_feedback: int  # feedback items on card uuids this service has no record of

    def totals(self) -> list[WeekRow]:
        """One row per recommendation over the whole period."""
        by_id: dict[str, WeekRow] = {}
        for row in self.rows:
            total = by_id.setdefault(row.recommendation, WeekRow(row.recommendation, "all"))
            for name in ("shown", "silent", "suppressed", "accepted", "overridden", "no_feedback"):
                setattr(total, name, getattr(total, name) + getattr(row, name))
            total.reasons.update(row.reasons)
        return [by_id[key] for key in sorted(by_id)]

    def reasons(self) -> Counter:
        out: Counter = Counter()
        for row in self.rows:
            out.update(row.reasons)
        return out


def _utc(value: datetime) -> datetime:
    # SQLite gives back naive datetimes; they were written in UTC.
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def iso_week(value: datetime) -> str:
    year, week, _ = _utc(value).isocalendar()
    return f"{year}-W{week:02d}"


def build_report(engine: sa.Engine, since: datetime, until: datetime | None = None) -> Report:
    since = _utc(since)
    until = _utc(until) if until else datetime.now(timezone.utc)
    cards = issued_card_table
    in_period = sa.and_(cards.c.issued_at >= since, cards.c.issued_at < until)
    with engine.connect() as connection:
        issued = connection.execute(
            sa.select(cards.c.card_uuid, cards.c.issued_at, cards.c.disposition,
                      issued_card_recommendation_table.c.recommendation_id)
            .join(issued_card_recommendation_table, issued_card_recommendation_table.c.card_id == cards.c.id)
            .where(in_period)
        ).all()
        feedback = connection.execute(
            sa.select(feedback_table.c.id, feedback_table.c.card_uuid, feedback_table.c.outcome,
                      feedback_table.c.override_system, feedback_table.c.override_code, feedback_table.c.outcome_timestamp)
            .where(feedback_table.c.card_uuid.in_(sa.select(cards.c.card_uuid).where(in_period)))
        ).all()
        unknown = connection.execute(
            sa.select(sa.func.count()).select_from(feedback_table).where(
                feedback_table.c.outcome_timestamp >= since,  # when the clinician acted
                feedback_table.c.outcome_timestamp < until,
                ~sa.exists().where(cards.c.card_uuid == feedback_table.c.card_uuid),
            )
        ).scalar_one()

    latest: dict[str, tuple] = {}  # card uuid -> its latest feedback row
    for item in feedback:
        key = (_utc(item.outcome_timestamp), item.id)
        if item.card_uuid not in latest or key > latest[item.card_uuid][0]:
            latest[item.card_uuid] = (key, item)

    rows: dict[tuple[str, str], WeekRow] = {}
    for card in issued:
        week = iso_week(card.issued_at)
        row = rows.setdefault((card.recommendation_id, week), WeekRow(card.recommendation_id, week))
        if card.disposition == SILENT:
            row.silent += 1
        elif card.disposition == SUPPRESSED:
            row.suppressed += 1
        elif card.disposition == SHOWN:
            row.shown += 1
            outcome = latest.get(card.card_uuid)
            if outcome is None:
                row.no_feedback += 1
            elif outcome[1].outcome == "accepted":
                row.accepted += 1
            else:
                row.overridden += 1
                row.reasons[reason_label(outcome[1].override_system, outcome[1].override_code)] += 1
    ordered = tuple(rows[key] for key in sorted(rows))
    return Report(since=since, until=until, rows=ordered, unknown_card_feedback=unknown)


# -- formats ------------------------------------------------------------------------------
COLUMNS = ("recommendation", "week", "shown", "silent", "suppressed", "accepted", "overridden", "no_feedback",
           "acceptance_rate", "override_rate", "override_reasons")


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _cells(row: WeekRow) -> list[str]:
    reasons = "; ".join(f"{reason}: {count}" for reason, count in sorted(row.reasons.items()))
    return [row.recommendation, row.week, str(row.shown), str(row.silent), str(row.suppressed), str(row.accepted),
            str(row.overridden), str(row.no_feedback), _rate(row.acceptance_rate), _rate(row.override_rate), reasons]


def to_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in report.rows:
        cells = _cells(row)
        # Rates as plain fractions in CSV, for spreadsheets.
        cells[8] = "" if row.acceptance_rate is None else f"{row.acceptance_rate:.4f}"
        cells[9] = "" if row.override_rate is None else f"{row.override_rate:.4f}"
        writer.writerow(cells)
    return out.getvalue()


def _md_table(rows: list[WeekRow]) -> list[str]:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in _cells(row)) + " |" for row in rows]
    return lines


def _period(report: Report) -> str:
    return f"{report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M} UTC"


def to_markdown(report: Report) -> str:
    lines = ["# rpl-cds governance report", "", f"Cards issued {_period(report)}.", "",
             "Rates are of the cards shown; silent (pilot) and suppressed (no repeat after override) cards "
             "reach no clinician.", "", "## Per recommendation", ""]
    lines += _md_table(report.totals())
    lines += ["", "## Per recommendation and week", ""]
    lines += _md_table(list(report.rows))
    lines += ["", "## Override reasons", "", "| reason | overrides |", "|---|---|"]
    lines += [f"| {reason} | {count} |" for reason, count in report.reasons().most_common()]
    lines += ["", f"Feedback on cards this service has no record of: {report.unknown_card_feedback}", ""]
    return "\n".join(lines)


# -- charts ---------------------------------------------------------------------------------
def _svg(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return base64.b64encode(buffer.getvalue()).decode()


def charts(report: Report) -> dict[str, str]:
    """Base64 SVGs: firing per week per ID, override rate per ID, override reasons."""
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in a threaded server

    out: dict[str, str] = {}
    weeks = sorted({row.week for row in report.rows})
    firing: dict[str, dict[str, int]] = defaultdict(dict)
    for row in report.rows:
        firing[row.recommendation][row.week] = row.shown + row.silent + row.suppressed
    figure = Figure(figsize=(9, 4.5))
    axes = figure.subplots()
    for rec in sorted(firing):
        axes.plot(weeks, [firing[rec].get(week, 0) for week in weeks], marker="o", label=rec)
    axes.set_title("Cards per week per recommendation (shown, silent and suppressed)")
    axes.set_xlabel("ISO week")
    axes.set_ylabel("cards")
    if firing:
        axes.legend(fontsize="small", ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1))
    axes.tick_params(axis="x", labelrotation=45)
    out["firing"] = _svg(figure)

    totals = [row for row in report.totals() if row.shown]
    figure = Figure(figsize=(9, 4))
    axes = figure.subplots()
    axes.bar([row.recommendation for row in totals], [100 * (row.override_rate or 0) for row in totals], color="#c0392b")
    axes.set_title("Override rate per recommendation (% of cards shown)")
    axes.set_ylabel("%")
    axes.set_ylim(0, 100)
    axes.tick_params(axis="x", labelrotation=45)
    out["override_rate"] = _svg(figure)

    reasons = report.reasons().most_common()
    figure = Figure(figsize=(9, max(2.5, 0.4 * len(reasons) + 1)))
    axes = figure.subplots()
    axes.barh([reason for reason, _ in reversed(reasons)], [count for _, count in reversed(reasons)], color="#2c3e50")
    axes.set_title("Override reasons")
    axes.set_xlabel("overrides")
    out["reasons"] = _svg(figure)
    return out


CHART_TITLES = {"firing": "Cards per week per recommendation", "override_rate": "Override rate per recommendation",
                "reasons": "Override reasons"}


def _html_table(rows: list[WeekRow], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join(
        f'<tr data-recommendation="{html.escape(row.recommendation)}" data-week="{html.escape(row.week)}">'
        + "".join(f'<td class="{name}">{html.escape(cell)}</td>' for name, cell in zip(COLUMNS, _cells(row)))
        + "</tr>"
        for row in rows
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def to_html(report: Report) -> str:
    images = charts(report)
    figures = "".join(
        f'<figure><img id="chart-{name}" alt="{html.escape(CHART_TITLES[name])}" '
        f'src="data:image/svg+xml;base64,{data}"><figcaption>{html.escape(CHART_TITLES[name])}</figcaption></figure>'
        for name, data in images.items()
    )
    reasons = "".join(f"<tr><td>{html.escape(r)}</td><td>{n}</td></tr>" for r, n in report.reasons().most_common())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rpl-cds governance report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }}
th:first-child, td:first-child, td.week, td.override_reasons {{ text-align: left; }}
figure {{ margin: 1rem 0; }} img {{ max-width: 100%; }}
</style></head>
<body>
<h1>rpl-cds governance report</h1>
<p id="period">Cards issued {html.escape(_period(report))}. Rates are of the cards shown; silent (pilot) and
suppressed (no repeat after override) cards reach no clinician.</p>
<h2>Per recommendation</h2>
{_html_table(report.totals(), "totals")}
<h2>Charts</h2>
{figures}
<h2>Per recommendation and week</h2>
{_html_table(list(report.rows), "weeks")}
<h2>Override reasons</h2>
<table id="reasons"><thead><tr><th>reason</th><th>overrides</th></tr></thead><tbody>{reasons}</tbody></table>
<p id="unknown">Feedback on cards this service has no record of: {report.unknown_card_feedback}</p>
</body></html>
"""


def render(report: Report, fmt: str) -> str:
    return {"markdown": to_markdown, "csv": to_csv, "html": to_html}[fmt](report)
