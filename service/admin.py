"""The governance dashboard, ``GET /admin/``: the report as a page, read-only.

Off (404) unless an admin credential is configured: RPL_ADMIN_TOKEN (sent as
``Authorization: Bearer``) or RPL_ADMIN_USER/RPL_ADMIN_PASSWORD (HTTP Basic).
This credential is the committee's, not the EHR's: the EHR's JWT does not open
it and it opens nothing else. Compared in constant time. The page holds counts
per catalogue ID only, no patient data and no free-text comments.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from datetime import date, datetime, timedelta, timezone

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, request

from .errors import ApiError
from .report import build_report, to_csv, to_html

bp = Blueprint("admin", __name__, url_prefix="/admin")
DEFAULT_WEEKS = 12
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _authorized(settings) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and settings.admin_token is not None:
        return _same(value.strip(), settings.admin_token.get_secret_value())
    if scheme.lower() == "basic" and settings.admin_user is not None:
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user_ok = _same(user, settings.admin_user)
        password_ok = _same(password, settings.admin_password.get_secret_value())
        return user_ok and password_ok  # both compared, whichever is wrong
    return False


@bp.before_request
def _admin_only():
    settings = current_app.extensions["rpl"].settings
    if settings.admin_token is None and settings.admin_user is None:
        raise ApiError(404, "the governance dashboard is off: set RPL_ADMIN_TOKEN or RPL_ADMIN_USER/RPL_ADMIN_PASSWORD")
    if not _authorized(settings):
        response = Response("admin credential required\n", status=401, mimetype="text/plain")
        response.headers["WWW-Authenticate"] = 'Basic realm="rpl-cds admin", charset="UTF-8"' if settings.admin_user else "Bearer"
        response.headers.update(SECURITY_HEADERS)
        return response
    return None


def _day(name: str, default: date | None) -> date | None:
    value = request.args.get(name)
    if value is None:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, f"{name}: {value[:40]!r} is not a date YYYY-MM-DD") from None


def _report():
    today = datetime.now(timezone.utc).date()
    since = _day("since", today - timedelta(weeks=DEFAULT_WEEKS))
    until = _day("until", None)
    if until is not None and until <= since:
        raise ApiError(400, "until must be after since")

    def start(day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)

    store = current_app.extensions["rpl"].feedback
    try:
        return build_report(store.engine, start(since), start(until) if until else None)
    except sa.exc.SQLAlchemyError:
        raise ApiError(503, "the feedback database is unavailable") from None


def _answer(body: str, mimetype: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers.update(SECURITY_HEADERS)
    return response


@bp.get("/")
def dashboard():
    return _answer(to_html(_report()), "text/html")


@bp.get("/report.csv")
def report_csv():
    return _answer(to_csv(_report()), "text/csv")
