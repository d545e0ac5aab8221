"""A counting reverse proxy in front of the FHIR server.

The service is pointed at the proxy for a few traced hook calls (never for the
timed load, which goes straight to the FHIR server). The proxy forwards each
request unchanged and notes when it arrived and when its answer was sent, so the
benchmark can tell how many FHIR round trips one hook call makes and how many of
them happen one after the other (``waves``). Links in the answers (Bundle
``self``/``next``) are rewritten to the proxy, so paging stays traced too.

Every answer is held back ``delay`` seconds: a local FHIR server answers in about
a millisecond, sooner than a busy client gets its next thread going, so without
the delay reads sent in parallel could look sequential. With it, reads that do not
wait for each other all arrive before the first answer leaves.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Hit:
    start: float  # perf_counter() when the request had arrived
    end: float  # perf_counter() when its answer was sent
    method: str
    target: str
    status: int


def waves(hits: list[Hit]) -> int:
    """Round trips in sequence: the longest chain of requests each sent after the previous one was answered."""
    depth: list[int] = []
    ordered = sorted(hits, key=lambda h: h.start)
    for i, hit in enumerate(ordered):
        depth.append(1 + max((depth[j] for j in range(i) if ordered[j].end <= hit.start), default=0))
    return max(depth, default=0)


def max_overlap(hits: list[Hit]) -> int:
    """Most requests in flight at the same moment."""
    events = sorted([(h.start, 1) for h in hits] + [(h.end, -1) for h in hits])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


async def _read_message(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str], bytes]:
    """One HTTP/1.1 message: head (start line + headers), headers by lower-case name, body (de-chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    headers = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunks.append((await reader.readexactly(size + 2))[:-2])
            if size == 0:
                break
        body = b"".join(chunks)
    else:
        body = b""
    return head, headers, body


def _reframe(head: bytes, body: bytes) -> bytes:
    """The message again with a Content-Length of the (rewritten) body and no chunking."""
    lines = [line for line in head.decode("latin-1").split("\r\n") if line]
    kept = [lines[0]] + [line for line in lines[1:]
                         if line.split(":", 1)[0].strip().lower() not in ("content-length", "transfer-encoding")]
    kept.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(kept) + "\r\n\r\n").encode("latin-1") + body


class CountingProxy:
    """Runs in a thread of its own with its own event loop; ``take()`` returns and clears the hits."""

    def __init__(self, upstream_base: str, delay: float = 0.05):
        parts = urlsplit(upstream_base)
        self.delay = delay
        self.upstream = (parts.hostname, parts.port)
        self.upstream_base = upstream_base.rstrip("/")
        self.base_url = ""
        self._hits: list[Hit] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fhir-proxy", daemon=True)

    def start(self) -> str:
        """Start listening on a free port of 127.0.0.1; returns the proxy's FHIR base URL."""
        self._thread.start()
        server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop).result(timeout=10)
        port = server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}{urlsplit(self.upstream_base).path}"
        return self.base_url

    def take(self) -> list[Hit]:
        with self._lock:
            hits, self._hits = self._hits, []
        return hits

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                try:
                    head, _, body = await _read_message(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                start = time.perf_counter()
                method, target = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")[:2]
                if upstream is None:
                    upstream = await asyncio.open_connection(*self.upstream)
                upstream[1].write(head + body)
                await upstream[1].drain()
                answer_head, answer_headers, answer = await _read_message(upstream[0])
                answer = answer.replace(self.upstream_base.encode(), self.base_url.encode())
                await asyncio.sleep(self.delay)
                writer.write(_reframe(answer_head, answer))
                await writer.drain()
                status = int(answer_head.split(b" ", 2)[1])
                with self._lock:
                    self._hits.append(Hit(start, time.perf_counter(), method, target, status))
                if answer_headers.get("connection", "").lower() == "close":
                    upstream[1].close()
                    upstream = None
        finally:
            writer.close()
            if upstream is not None:
                upstream[1].close()
