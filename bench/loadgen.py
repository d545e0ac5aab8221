"""Closed-loop HTTP/1.1 load generator: asyncio streams, keep-alive, no dependencies.

Run as its own process (bench/run.py starts one per case), so the client's CPU is
not the server's: N workers each hold keep-alive connections and send the next
request as soon as the previous answer is read. A warm-up phase is sent but not
measured. Then no new request is started after --duration seconds or once
--max-requests were started, whichever comes first, so every case is bounded in
time; requests still in flight are waited for and counted, so slow answers at the
end are not dropped from the percentiles. Throughput is the answers completed in
the measured window divided by its length.

With several --url and --parallel, one "request" is all of them at once, each on
its own connection, and its latency is until the last answer (how the service
fetches its missing prefetch keys); per-URL latencies are reported too.

A body with a hookInstance is sent with a new one (a uuid of the same length) every
time, as an EHR does: one id per hook call (CDS Hooks 2.0). The service must not
be measured on a request it could take for one it has seen.

With two --url and --alternate SECONDS, the load goes to one URL at a time, in turns
of that length (after a warm-up of each): both servers are measured in the same
seconds, so a machine whose speed drifts from one second to the next (a shared VM)
shifts both alike, and their ratio holds. A request counts for the turn it was started
in. Prints {"alternate": [result of the first URL, result of the second]}.

Prints one JSON object: count, errors, status counts, p50/p95/p99/mean latency in
ms and requests per second over the measured window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import sys
import time
import uuid
from urllib.parse import urlsplit

REQUEST_TIMEOUT = 30.0  # seconds; a request that takes longer counts as an error
HOOK_INSTANCE = re.compile(rb'"hookInstance"\s*:\s*"([0-9a-fA-F-]{36})"')


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects when the server closes it."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, payload: bytes) -> int:
        """Send one prepared request, read the whole answer; return the HTTP status."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(payload)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        else:  # no framing: the body ends when the server closes
            await self.reader.read()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def prepare(url: str, body: bytes | None, headers: list[str]) -> tuple[str, int, bytes]:
    """The bytes of one request (sent unchanged every time, so the client does no work per call)."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{'POST' if body is not None else 'GET'} {target} HTTP/1.1", f"Host: {parts.netloc}",
             "Connection: keep-alive", "Accept: application/json, application/fhir+json", *headers]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return parts.hostname, parts.port or 80, ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    if not values:
        return math.nan
    return values[min(len(values) - 1, max(0, math.ceil(q / 100 * len(values)) - 1))]


async def run(args: argparse.Namespace) -> dict:
    body = open(args.body, "rb").read() if args.body else None
    found = HOOK_INSTANCE.search(body) if body else None
    instance = found.group(1) if found else None  # replaced in every request
    requests = [prepare(url, body, args.header) for url in args.url]
    if not args.parallel:
        requests = requests[:1]
    loop = asyncio.get_running_loop()
    measure_from = loop.time() + args.warmup
    deadline = measure_from + args.duration
    stop_at = deadline  # no new request after this; earlier if --max-requests were started
    latencies: list[float] = []  # of requests started in the measured window, each waited for
    per_url: list[list[float]] = []
    ends: list[float] = []  # completion times, for the throughput over the window
    statuses: dict[str, int] = {}
    errors = 0
    started = 0

    async def one(conn: Connection, payload: bytes) -> float:
        if instance is not None:  # the first occurrence: the one in the body (the headers hold no uuid)
            payload = payload.replace(instance, str(uuid.uuid4()).encode(), 1)
        t0 = time.perf_counter()
        status = await asyncio.wait_for(conn.request(payload), REQUEST_TIMEOUT)
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if status >= 400:
            raise RuntimeError(f"HTTP {status}")
        return time.perf_counter() - t0

    async def worker() -> None:
        nonlocal errors, started, stop_at
        conns = [Connection(host, port) for host, port, _ in requests]
        while (t0 := loop.time()) < stop_at:
            measured = t0 >= measure_from
            if measured:
                started += 1
                if started >= args.max_requests:
                    stop_at = t0
            try:
                parts = await asyncio.gather(*(one(c, p) for c, (_, _, p) in zip(conns, requests)))
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, RuntimeError, ValueError):
                for conn in conns:
                    conn.close()
                errors += measured
                continue
            t1 = loop.time()
            ends.append(t1)
            if measured:
                latencies.append((t1 - t0) * 1000)
                per_url.append([p * 1000 for p in parts])
        for conn in conns:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    window = stop_at - measure_from
    completed = sum(1 for t in ends if measure_from <= t <= stop_at)
    latencies.sort()
    result = {
        "count": len(latencies),
        "errors": errors,
        "statuses": statuses,
        "concurrency": args.concurrency,
        "window_s": round(window, 3),
        "rps": round(completed / window, 1) if window > 0 else 0.0,
        "p50_ms": round(percentile(latencies, 50), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "mean_ms": round(sum(latencies) / len(latencies), 2) if latencies else math.nan,
    }
    if args.parallel and len(requests) > 1:
        result["per_url_p50_ms"] = {
            url: round(percentile(sorted(p[i] for p in per_url), 50), 2) for i, url in enumerate(args.url)
        }
    return result


async def run_alternating(args: argparse.Namespace) -> dict:
    """Closed-loop load on two URLs in turns: (warm-up A, warm-up B), then (A, B) turns of
    --alternate seconds until each had --duration seconds measured."""
    body = open(args.body, "rb").read() if args.body else None
    found = HOOK_INSTANCE.search(body) if body else None
    instance = found.group(1) if found else None
    requests = [prepare(url, body, args.header) for url in args.url]
    loop = asyncio.get_running_loop()
    turns = max(1, round(args.duration / args.alternate))
    start = loop.time()
    phases: list[tuple[float, float, int, bool]] = []  # (from, to, which URL, measured)
    at = start
    for which, length, measured in [(0, args.warmup, False), (1, args.warmup, False),
                                    *[(i % 2, args.alternate, True) for i in range(2 * turns)]]:
        phases.append((at, at + length, which, measured))
        at += length
    end = at
    latencies: list[list[float]] = [[], []]
    completed = [0, 0]
    errors = [0, 0]
    statuses: list[dict[str, int]] = [{}, {}]

    def phase_at(t: float) -> tuple[int, bool]:
        for begin, finish, which, measured in phases:
            if begin <= t < finish:
                return which, measured
        return phases[-1][2], phases[-1][3]

    async def worker() -> None:
        conns = [Connection(host, port) for host, port, _ in requests]
        while (t0 := loop.time()) < end:
            which, measured = phase_at(t0)
            payload = requests[which][2]
            if instance is not None:
                payload = payload.replace(instance, str(uuid.uuid4()).encode(), 1)
            try:
                t_start = time.perf_counter()
                status = await asyncio.wait_for(conns[which].request(payload), REQUEST_TIMEOUT)
                elapsed = time.perf_counter() - t_start
                statuses[which][str(status)] = statuses[which].get(str(status), 0) + 1
                if status >= 400:
                    raise RuntimeError(f"HTTP {status}")
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, RuntimeError, ValueError):
                conns[which].close()
                errors[which] += measured
                continue
            if measured:
                latencies[which].append(elapsed * 1000)
                completed[which] += 1
        for conn in conns:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    window = turns * args.alternate  # measured seconds per URL
    results = []
    for which in (0, 1):
        values = sorted(latencies[which])
        results.append({
            "count": len(values),
            "errors": errors[which],
            "statuses": statuses[which],
            "concurrency": args.concurrency,
            "window_s": round(window, 3),
            "rps": round(completed[which] / window, 1),
            "p50_ms": round(percentile(values, 50), 2),
            "p95_ms": round(percentile(values, 95), 2),
            "p99_ms": round(percentile(values, 99), 2),
            "mean_ms": round(sum(values) / len(values), 2) if values else math.nan,
        })
    return {"alternate": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", action="append", required=True, help="http://127.0.0.1:PORT/path (repeatable)")
    parser.add_argument("--body", help="file with the JSON body to POST (else GET)")
    parser.add_argument("--header", action="append", default=[], help="extra header line, e.g. 'Accept-Language: en'")
    parser.add_argument("--parallel", action="store_true", help="one request = all --url at once")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds sent but not measured")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured at most")
    parser.add_argument("--max-requests", type=int, default=5000, help="answers measured at most")
    parser.add_argument("--alternate", type=float, metavar="SECONDS",
                        help="two --url measured in turns of this length (--duration each); not with --parallel")
    args = parser.parse_args(argv)
    if args.alternate is not None and (len(args.url) != 2 or args.parallel or args.alternate <= 0):
        parser.error("--alternate takes two --url, a positive number of seconds, and no --parallel")
    for url in args.url:
        if urlsplit(url).hostname != "127.0.0.1":
            parser.error("load is only sent to 127.0.0.1")
    print(json.dumps(asyncio.run(run_alternating(args) if args.alternate is not None else run(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
