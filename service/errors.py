"""Errors as HTTP answers with a FHIR OperationOutcome that says what is wrong.

Bad input never becomes a 500 or a stack trace; an unexpected error does
become a 500, with the details only in the log.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

ISSUE_CODE = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
              412: "not-found", 413: "too-long", 415: "not-supported", 429: "throttled",
              503: "transient"}


class ApiError(Exception):
    def __init__(self, status: int, messages: str | list[str]):
        super().__init__(messages)
        self.status = status
        self.messages = [messages] if isinstance(messages, str) else list(messages)


def operation_outcome(status: int, messages: list[str]) -> dict:
    severity = "error" if status < 500 else "fatal"
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": severity, "code": ISSUE_CODE.get(status, "exception"), "diagnostics": m} for m in messages[:50]
        ],
    }


def error_response(status: int, messages: list[str]) -> Response:
    response = jsonify(operation_outcome(status, messages))
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.messages)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        response = error_response(exc.code or 500, [exc.description or exc.name])
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unexpected error")
        return error_response(500, ["internal error; see the service log"])
