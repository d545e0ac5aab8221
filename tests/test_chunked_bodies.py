"""Chunked request bodies under gunicorn, as sent on a raw socket (issue #13, item 6).

A malformed chunk size is a 400, not a 500 with a traceback; a chunked body over
RPL_MAX_BODY_BYTES is a 413 as with Content-Length, never cut at the limit and answered.
"""

from __future__ import annotations

import json
import os
import socket

import pytest

from tests.builders import hook_request
from tests.serve import rpl_cds_serve

PATH = "/cds-services/rpl-patient-view"
LIMIT = 4000


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chunked")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPL_")}
    env.update(RPL_AUTH_ENABLED="false", RPL_MAX_BODY_BYTES=str(LIMIT), RPL_LANGUAGE="en",
               RPL_DATABASE_URL=f"sqlite:///{tmp / 'feedback.sqlite3'}")
    with rpl_cds_serve(env, tmp) as (url, out, err):
        yield url, out, err


def send(url: str, raw_body: bytes, path: str = PATH, framing: bytes = b"Transfer-Encoding: chunked\r\n") -> tuple[int, bytes]:
    """POST with Transfer-Encoding: chunked (or the framing headers given) and the body exactly as
    given; (status, whole answer)."""
    host, port = url.removeprefix("http://").split(":")
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            "Connection: close\r\n").encode() + framing + b"\r\n"
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(head + raw_body)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1]), answer


def chunked(body: bytes, size: int = 1000) -> bytes:
    parts = [body[i:i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def small_request() -> bytes:
    body = hook_request("patient-view")
    del body["prefetch"]  # stays under the limit; nothing to fetch either: a 412 without a fhirServer
    return json.dumps(body).encode()


def test_a_chunked_body_within_the_limit_is_read(served):
    status, answer = send(served[0], chunked(small_request()))
    assert len(small_request()) < LIMIT
    assert status == 412, answer  # read and understood: only the data is missing


@pytest.mark.parametrize("raw", [
    b"zz\r\n{}\r\n0\r\n\r\n",                  # not a hexadecimal size
    b"-5\r\n{}\r\n0\r\n\r\n",
    b"2\r\n{}XX0\r\n\r\n",                      # no CRLF after the chunk
    b"ffffffffffffffffffff\r\n{}\r\n0\r\n\r\n",  # a size past every limit
    b"2;" + b"x" * 70000 + b"\r\n{}\r\n0\r\n\r\n",
])
def test_a_malformed_chunked_body_is_400_not_500(served, raw):
    status, answer = send(served[0], raw)
    assert status in (400, 413), answer
    assert b"Traceback" not in answer


@pytest.mark.parametrize("framing,raw", [
    (b"Transfer-Encoding: gzip, chunked\r\n", b"2\r\n{}\r\n0\r\n\r\n"),
    (b"Transfer-Encoding: chunked, chunked\r\n", b"2\r\n{}\r\n0\r\n\r\n"),
    (b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n", b"2\r\n{}\r\n0\r\n\r\n"),
    (b"Transfer-Encoding: chunked\r\n", b"2\r\n{}\r\n"),          # no last chunk
    (b"Transfer-Encoding: chunked\r\n", b"2\n{}\n0\n\n"),          # LF without CR
    (b"Content-Length: 2\r\nContent-Length: 3\r\n", b"{}x"),
    (b"Content-Length: -1\r\n", b"{}"),
])
def test_other_broken_framings_are_4xx(served, framing, raw):
    status, answer = send(served[0], raw, framing=framing)
    assert 400 <= status < 500, answer


def test_a_chunked_body_over_the_limit_is_413_even_if_its_start_is_a_valid_request(served):
    """The first LIMIT bytes are a complete request, padded with spaces: cut there, it used to pass."""
    body = small_request()
    padded = body + b" " * (LIMIT - len(body)) + b" " * 5000
    status, answer = send(served[0], chunked(padded))
    assert status == 413, answer


def test_a_chunked_body_of_exactly_the_limit_is_read(served):
    body = small_request()
    status, answer = send(served[0], chunked(body + b" " * (LIMIT - len(body))))
    assert status == 412, answer


def test_no_traceback_in_the_service_log(served):
    _url, out, err = served
    assert "Traceback" not in out.read_text() + err.read_text()
