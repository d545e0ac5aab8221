"""/admin/: the governance dashboard, off without its own credential; read in a real Chromium."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pytest

from service import create_app
from service.report import build_report
from tests import governance_week
from tests.browser import serve_wsgi  # the browser fixture: tests/conftest.py
from tests.conftest import TODAY, make_settings

TOKEN = "committee-token-0123456789abcdef"
USER, PASSWORD = "committee", "a long password"
SINCE, UNTIL = "2026-11-16", "2026-11-30"
SCREENSHOTS = Path(__file__).parent.parent / "test-screenshots"


@contextmanager
def screenshot_on_failure(page, name: str) -> Iterator[None]:
    """A failing browser test leaves a picture of the page in test-screenshots/."""
    try:
        yield
    except BaseException:
        SCREENSHOTS.mkdir(exist_ok=True)
        try:
            page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
            print(f"screenshot of the failure: {SCREENSHOTS / f'{name}.png'}")
        except Exception as exc:  # noqa: BLE001 - the page may be gone; the original failure matters
            print(f"no screenshot ({type(exc).__name__})")
        raise


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def make_app(tmp_path):
    apps = []

    def make(**overrides):
        app = create_app(make_settings(tmp_path, **overrides), today=lambda: TODAY)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["rpl"].close()


def test_the_dashboard_is_off_without_an_admin_credential(make_app):
    client = make_app().test_client()
    assert client.get("/admin/").status_code == 404
    assert client.get("/admin/report.csv").status_code == 404


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong-token-0123456789abcdef"},
    {"Authorization": f"Bearer {TOKEN}x"},
    basic(USER, "wrong password"),
    basic("someone", PASSWORD),
    {"Authorization": "Basic not-base64!"},
    {"Authorization": TOKEN},
])
def test_a_wrong_or_missing_credential_is_401(make_app, headers):
    client = make_app(admin_token=TOKEN, admin_user=USER, admin_password=PASSWORD).test_client()
    response = client.get("/admin/", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert "governance" not in response.get_data(as_text=True)


def test_the_token_and_basic_auth_open_it_read_only(make_app):
    client = make_app(admin_token=TOKEN, admin_user=USER, admin_password=PASSWORD).test_client()
    for headers in ({"Authorization": f"Bearer {TOKEN}"}, basic(USER, PASSWORD)):
        response = client.get("/admin/", headers=headers)
        assert response.status_code == 200 and response.mimetype == "text/html"
        assert response.headers["Cache-Control"] == "no-store"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert client.post("/admin/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 405
    assert client.get("/admin/report.csv", headers=basic(USER, PASSWORD)).mimetype == "text/csv"


def test_the_ehr_jwt_does_not_open_the_dashboard_and_the_admin_token_opens_no_service(tmp_path):
    from tests.test_auth import auth_settings, bearer, close, new_app, token

    app = new_app(auth_settings(tmp_path, admin_token=TOKEN))
    try:
        client = app.test_client()
        assert client.get("/admin/", headers=bearer(token("/admin/"))).status_code == 401
        assert client.get("/cds-services", headers=bearer(TOKEN)).status_code == 401
        assert client.get("/admin/", headers=bearer(TOKEN)).status_code == 200
    finally:
        close(app)


def test_bad_dates_are_400(make_app):
    client = make_app(admin_token=TOKEN).test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/admin/?since=last-week", headers=headers).status_code == 400
    assert client.get("/admin/?since=2026-11-30&until=2026-11-01", headers=headers).status_code == 400


def test_the_dashboard_in_chromium_shows_the_numbers_and_charts(make_app, browser):
    app = make_app(admin_user=USER, admin_password=PASSWORD, silent_recommendations=governance_week.SILENT)
    governance_week.generate(app)
    report = build_report(app.extensions["rpl"].feedback.engine, datetime(2026, 11, 16, tzinfo=timezone.utc),
                          datetime(2026, 11, 30, tzinfo=timezone.utc))
    assert report.rows
    with serve_wsgi(app) as url:
        context = browser.new_context(http_credentials={"username": USER, "password": PASSWORD})
        page = context.new_page()
        try:
            with screenshot_on_failure(page, "admin-dashboard"):
                response = page.goto(f"{url}/admin/?since={SINCE}&until={UNTIL}")
                assert response is not None and response.status == 200
                assert page.locator("h1").inner_text() == "rpl-cds governance report"
                for row in report.rows:
                    cells = page.locator(f'#weeks tr[data-recommendation="{row.recommendation}"][data-week="{row.week}"]')
                    assert cells.count() == 1
                    for name in ("shown", "silent", "accepted", "overridden", "no_feedback"):
                        assert cells.locator(f"td.{name}").inner_text() == str(getattr(row, name))
                for total in report.totals():
                    cells = page.locator(f'#totals tr[data-recommendation="{total.recommendation}"]')
                    assert cells.locator("td.overridden").inner_text() == str(total.overridden)
                for chart in ("firing", "override_rate", "reasons"):
                    image = page.locator(f"#chart-{chart}")
                    image.wait_for()
                    # Drawn by the browser: an SVG it could not decode has no width.
                    assert image.evaluate("img => img.complete && img.naturalWidth > 100"), chart
                reasons = page.locator("#reasons tbody tr")
                assert reasons.count() == len(report.reasons())
                assert page.locator("#unknown").inner_text().endswith(str(len(governance_week.UNKNOWN_CARDS)))
        finally:
            context.close()


def test_chromium_without_the_credential_gets_no_page(make_app, browser):
    app = make_app(admin_token=TOKEN)
    with serve_wsgi(app) as url:
        page = browser.new_page()
        try:
            with screenshot_on_failure(page, "admin-no-credential"):
                response = page.goto(f"{url}/admin/")
                assert response is not None and response.status == 401
                assert "governance report" not in page.content()
        finally:
            page.close()
