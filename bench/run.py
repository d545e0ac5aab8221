"""Hook latency and throughput benchmark (issue #7): one command, about two and a half minutes.

    .venv/bin/python bench/run.py                 # the working tree as it is
    .venv/bin/python bench/run.py --commit HEAD   # exactly the service's code of a commit

Starts, all on 127.0.0.1 and stopped again by their own process ids:
- the service the production way (``rpl-cds serve``: gunicorn gthread, 2 workers x 4 threads),
  with authentication off, a temporary SQLite feedback file and the FHIR server below allowlisted;
- the same service twice more with its caches off (VARIANTS): without the facts cache
  (RPL_FACTS_CACHE_SIZE=0), every call reads the record anew, as after a new result arrived; with
  the validation cache off too, every call validates every resource it reads, as the first call
  with a patient's data does ("cold");
- the null service (bench/null_app.py) on the same gunicorn settings, answering {"cards": []};
- a real FHIR R4 server (sekmet-fhir, via tests/fhir_server.py) holding the heavy patient of
  bench/workloads.py, and a counting proxy in front of it (bench/fhir_proxy.py).

Load comes from a separate process (bench/loadgen.py) at concurrency 1, 8 and 32, each case
warmed up and then measured for a bounded time. With prefetch, the null service and the service
share each case: one load process sends to them in turns of a second (bench/loadgen.py
--alternate), so a machine whose speed drifts from second to second shifts both alike and the
ratios between them hold. Without prefetch the
service fetches from the FHIR server; the same client measures the FHIR server's own reads.

Prints a Markdown report with PASS/FAIL per target and writes it to bench/results/<date>.md.
Exit status 0 when every target passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

import requests  # noqa: E402

from fhir_proxy import CountingProxy, max_overlap, waves  # noqa: E402
from workloads import HOOKS, PATIENT_ID, Workload  # noqa: E402

BIN = Path(sys.executable).parent  # the venv's rpl-cds, gunicorn and python
CONCURRENCY = (1, 8, 32)
COLD_CONCURRENCY = (1, 8)  # the cache-off services: the cases the targets name


@dataclass(frozen=True)
class Variant:
    """The service with some of its caches off, measured next to the same null case."""

    name: str
    env: dict[str, str]
    heading: str
    what: str


VARIANTS = (
    Variant("facts-off", {"RPL_FACTS_CACHE_SIZE": "0"}, "facts cache off (`RPL_FACTS_CACHE_SIZE=0`)",
            "Every call gathers the record and extracts its facts, as the first call after the record changed "
            "(a new result arrived, say) does; the resources are not validated again (validation cache on)."),
    Variant("cold", {"RPL_FACTS_CACHE_SIZE": "0", "RPL_VALIDATION_CACHE_SIZE": "0"},
            "both caches off (`RPL_FACTS_CACHE_SIZE=0`, `RPL_VALIDATION_CACHE_SIZE=0`)",
            "Every call reads the record and validates every resource it reads, as the first call with a "
            "patient's data does."),
)
WORKERS, THREADS = 2, 4  # rpl-cds serve's defaults, stated so the null service gets the same
TRACED_CALLS = 3
FHIR_READ_TIMING = dict(warmup=0.3, duration=1.5, max_requests=300)
ALTERNATE_S = 1.0  # with prefetch, the null service and the service take turns of this many seconds
# The services with caches off are for information (not judged): shorter cases keep the run under 3 minutes.
VARIANT_TIMING = dict(warmup=0.3, duration=2.0)

# The targets of issue #7 (this 2-core machine).
P99_LIMIT_MS = 25.0  # with prefetch, at concurrency 8
P50_RATIO_LIMIT = 2.5  # service p50 / null p50, with prefetch
THROUGHPUT_RATIO_MIN = 0.5  # service req/s / null req/s, with prefetch
SEQUENTIAL_LIMIT = 1  # FHIR round trips in sequence per hook call, without prefetch
FETCH_OVERHEAD_MS = 10.0  # hook p50 <= the FHIR server's own p50 for those reads + this, without prefetch

HTTP = requests.Session()
HTTP.trust_env = False  # 127.0.0.1 only: no proxy from the environment
HTTP.headers["Connection"] = "close"  # hold no idle connection that would count as load on a worker


@dataclass
class Process:
    """A server this run started; stopped by its own pid (gunicorn's master stops its workers)."""

    name: str
    popen: subprocess.Popen
    url: str
    log: Path

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)

    def workers(self) -> list[int]:
        """Pids of the gunicorn worker processes (children of the master)."""
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == self.popen.pid:
                    children.append(int(stat.parent.name))
        return sorted(children)

    def connections(self) -> str:
        """Established client connections held by each worker, e.g. "5+3": gthread keeps a keep-alive
        connection on the worker that accepted it, so this decides how many cores serve the load."""
        port = urlsplit(self.url).port
        established = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError):
                for line in Path(table).read_text().splitlines()[1:]:
                    fields = line.split()  # local address, remote address, state, ..., inode
                    if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        established.add(f"socket:[{fields[9]}]")
        counts = []
        for pid in self.workers():
            held = 0
            with contextlib.suppress(OSError):
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    with contextlib.suppress(OSError):
                        held += os.readlink(fd) in established
            counts.append(held)
        return "+".join(map(str, sorted(counts, reverse=True)))

    def post(self, path: str, body: bytes, timeout: float = 60) -> requests.Response:
        return HTTP.post(self.url + path, data=body, headers={"Content-Type": "application/json"}, timeout=timeout)


@dataclass
class Results:
    """Everything one run measured."""

    run_date: date
    timing: dict[str, Any]
    code: str  # which code the servers loaded
    counts: dict[str, int]
    sizes: dict[str, int]
    cards: dict[str, list[str]]
    prefetch: dict[tuple[str, int], tuple[dict, dict]] = field(default_factory=dict)  # (service, null)
    # Variant name -> (hook, concurrency) -> (service with caches off, null)
    variants: dict[str, dict[tuple[str, int], tuple[dict, dict]]] = field(default_factory=dict)
    fhir_note: str = ""
    no_prefetch: dict[tuple[str, int], dict] = field(default_factory=dict)
    fetch_cards: dict[str, list[str]] = field(default_factory=dict)
    traced: dict[str, dict[str, Any]] = field(default_factory=dict)
    proxy_delay: float = 0.0
    reads: dict[str, dict] = field(default_factory=dict)  # FHIR URL -> loadgen result
    read_set: dict | None = None  # all reads at once
    memory: dict[str, list[tuple[int, int | None, int | None]]] = field(default_factory=dict)
    service_errors: int = 0
    error_lines: list[str] = field(default_factory=list)


# -- processes ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(name: str, command: list[str], env: dict[str, str], tmp: Path, port: int) -> Process:
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    proc = Process(name, popen, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"{name} exited with {popen.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if HTTP.get(proc.url + "/healthz", timeout=1).status_code == 200:
                return proc
        time.sleep(0.1)
    proc.stop()
    raise RuntimeError(f"{name} did not answer within 60 s:\n{log.read_text()[-3000:]}")


def start_service(tmp: Path, allowlist: list[str], code_dir: Path | None, name: str = "rpl-cds",
                  **extra_env: str) -> Process:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPL_")}
    if code_dir is not None:  # found before the editable install of the working tree
        env["PYTHONPATH"] = os.pathsep.join([str(code_dir), *filter(None, [env.get("PYTHONPATH")])])
    env.update(
        RPL_AUTH_ENABLED="false",  # load without JWTs (logs a WARNING at start)
        RPL_DATABASE_URL=f"sqlite:///{tmp / f'feedback-{name}.sqlite3'}",
        RPL_FHIR_SERVER_ALLOWLIST=",".join(allowlist),
    )
    env.update(extra_env)
    command = [str(BIN / "rpl-cds"), "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(WORKERS), "--threads", str(THREADS)]
    return start_gunicorn(name, command, env, tmp, port)


def start_null(tmp: Path) -> Process:
    """bench/null_app.py with the gunicorn settings rpl-cds serve uses (service/cli.py)."""
    port = free_port()
    command = [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS),
               "--threads", str(THREADS), "--worker-connections", str(THREADS),  # as rpl-cds serve sets them
               "--worker-class", "gthread", "--timeout", "30",
               "--error-logfile", "-", "--chdir", str(BENCH), "null_app:app"]
    return start_gunicorn("null", command, dict(os.environ), tmp, port)


def start_fhir(tmp: Path, workload: Workload):
    """sekmet-fhir (tests/fhir_server.py) loaded with the heavy patient; raises FhirServerUnavailable."""
    from tests import fhir_server

    server = fhir_server.start(tmp / "sekmet")
    try:
        answer = HTTP.post(server.base_url, data=json.dumps(workload.transaction()), timeout=(3.05, 120),
                           headers={"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"})
        failed = [e.get("response", {}).get("status") for e in answer.json().get("entry", [])
                  if not str(e.get("response", {}).get("status", "")).startswith("2")]
        if answer.status_code >= 300 or failed:
            raise RuntimeError(f"loading the heavy patient failed: HTTP {answer.status_code} {failed[:5]} "
                               f"{answer.text[:500]}")
    except BaseException:
        server.stop()
        raise
    return server


# -- measuring -----------------------------------------------------------------------------------
def load(urls: list[str], *, body: Path | None = None, concurrency: int = 1, parallel: bool = False,
         warmup: float, duration: float, max_requests: int, server: Process | None = None) -> dict[str, Any]:
    """One case of bench/loadgen.py, in its own process; with server, also how the connections were placed."""
    command = [sys.executable, str(BENCH / "loadgen.py"), "--concurrency", str(concurrency),
               "--warmup", str(warmup), "--duration", str(duration), "--max-requests", str(max_requests)]
    for url in urls:
        command += ["--url", url]
    if body is not None:
        command += ["--body", str(body)]
    if parallel:
        command.append("--parallel")
    popen = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    placement = ""
    if server is not None:
        time.sleep(warmup + min(duration, 1.0) / 2)  # inside the measured window
        placement = server.connections()
    out, err = popen.communicate(timeout=warmup + duration + 60)
    if popen.returncode != 0:
        raise RuntimeError(f"loadgen failed: {err[-2000:]}")
    return {**json.loads(out), "placement": placement}


def load_in_turns(null: Process, service: Process, path: str, *, body: Path, concurrency: int,
                  warmup: float, duration: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """The null service and the service in turns of ALTERNATE_S seconds, in one loadgen process
    (bench/loadgen.py --alternate), duration seconds each: (service, null), with placements."""
    command = [sys.executable, str(BENCH / "loadgen.py"), "--concurrency", str(concurrency),
               "--warmup", str(warmup), "--duration", str(duration), "--alternate", str(ALTERNATE_S),
               "--url", null.url + path, "--url", service.url + path, "--body", str(body)]
    popen = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2 * warmup + ALTERNATE_S / 2)  # in the first measured turn (the null service's)
    placements = [null.connections()]
    time.sleep(ALTERNATE_S)
    placements.append(service.connections())
    out, err = popen.communicate(timeout=2 * warmup + 2 * duration + 60)
    if popen.returncode != 0:
        raise RuntimeError(f"loadgen failed: {err[-2000:]}")
    base, svc = json.loads(out)["alternate"]
    return {**svc, "placement": placements[1]}, {**base, "placement": placements[0]}


def cards_of(answer: requests.Response) -> list[str]:
    if answer.status_code != 200:
        return [f"HTTP {answer.status_code}"]
    return [card["source"]["topic"]["code"] for card in answer.json()["cards"]]


def prefetch_urls(service: Process, fhir_base: str) -> list[str]:
    """The reads the service makes without prefetch: its discovery templates for the heavy patient."""
    discovery = HTTP.get(service.url + "/cds-services", timeout=10).json()
    templates = next(s["prefetch"] for s in discovery["services"] if s["id"] == "rpl-patient-view")
    return [f"{fhir_base}/{t.replace('{{context.patientId}}', PATIENT_ID)}" for t in templates.values()]


def trace_round_trips(service: Process, proxy: CountingProxy, workload: Workload) -> dict[str, dict[str, Any]]:
    """A few no-prefetch calls through the counting proxy: reads per call and how many in sequence."""
    traced = {}
    for hook in HOOKS:
        body = workload.body(hook, fhir_server=proxy.base_url, prefetch=False)
        calls = []
        for _ in range(TRACED_CALLS):
            proxy.take()
            t0 = time.perf_counter()
            answer = service.post(f"/cds-services/rpl-{hook}", body)
            wall = time.perf_counter() - t0
            time.sleep(0.05)  # the proxy notes the last answer just after sending it
            hits = proxy.take()
            calls.append({"status": answer.status_code, "reads": len(hits), "waves": waves(hits),
                          "in_flight": max_overlap(hits), "wall": wall})
        traced[hook] = {
            "reads": max(c["reads"] for c in calls),
            "waves": max(c["waves"] for c in calls),
            "in_flight": min(c["in_flight"] for c in calls),
            "statuses": sorted({c["status"] for c in calls}),
            "wall_ms": min(c["wall"] for c in calls) * 1000,
        }
    return traced


def vm_kib(pid: int, key: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def measure(workload: Workload, timing: dict[str, Any], tmp: Path, commit: str | None) -> Results:
    code_dir, code = export_commit(commit, tmp / "code") if commit else (None, code_state())
    results = Results(workload.today, timing, code, workload.counts(),
                      {hook: len(workload.body(hook)) for hook in HOOKS}, {})
    with contextlib.ExitStack() as stack:
        print("starting the FHIR server, the service and the null service ...", file=sys.stderr)
        from tests import fhir_server

        fhir = proxy = None
        try:
            fhir = start_fhir(tmp, workload)
            stack.callback(fhir.stop)
            proxy = CountingProxy(fhir.base_url)
            proxy.start()
            stack.callback(proxy.stop)
        except fhir_server.FhirServerUnavailable as exc:
            results.fhir_note = f"The FHIR server could not be started, so no-prefetch mode was not measured: {exc}"
        service = start_service(tmp, [fhir.base_url, proxy.base_url] if fhir else [], code_dir)
        stack.callback(service.stop)
        null = start_null(tmp)
        stack.callback(null.stop)
        variants = {}
        for variant in VARIANTS:
            variants[variant.name] = start_service(tmp, [], code_dir, f"rpl-cds-{variant.name}", **variant.env)
            stack.callback(variants[variant.name].stop)
            results.variants[variant.name] = {}

        # -- with prefetch: the null service and the service in turn, case by case ---------------
        for hook in HOOKS:
            path, body = f"/cds-services/rpl-{hook}", tmp / f"{hook}.json"
            body.write_bytes(workload.body(hook))
            results.cards[hook] = cards_of(service.post(path, body.read_bytes()))
            if results.cards[hook][:1] and results.cards[hook][0].startswith("HTTP"):
                raise RuntimeError(f"{hook}: {results.cards[hook][0]}; see {service.log}")
            for c in CONCURRENCY:
                print(f"prefetch    {hook:<13} c={c:<3}", end=" ", file=sys.stderr, flush=True)
                svc, base = load_in_turns(null, service, path, body=body, concurrency=c,
                                          warmup=timing["warmup"], duration=timing["duration"])
                results.prefetch[hook, c] = (svc, base)
                print(f"p50 {svc['p50_ms']:.1f} ms (null {base['p50_ms']:.1f}), {svc['rps']:.0f} req/s "
                      f"(null {base['rps']:.0f})", end="", file=sys.stderr)
                if c in COLD_CONCURRENCY:
                    for name, server in variants.items():
                        off = load([server.url + path], body=body, concurrency=c, server=server,
                                   **{**timing, **VARIANT_TIMING})
                        results.variants[name][hook, c] = (off, base)
                        print(f"; {name} p50 {off['p50_ms']:.1f} ms, {off['rps']:.0f} req/s", end="", file=sys.stderr)
                print(file=sys.stderr)

        # -- without prefetch: the service fetches from the FHIR server -------------------------
        if fhir is not None:
            print("the FHIR server's own reads, and traced hook calls ...", file=sys.stderr)
            urls = prefetch_urls(service, fhir.base_url)
            results.reads = {url: load([url], **FHIR_READ_TIMING) for url in urls}
            results.read_set = load(urls, parallel=True, **FHIR_READ_TIMING)
            results.traced = trace_round_trips(service, proxy, workload)
            results.proxy_delay = proxy.delay
            for hook in HOOKS:
                path, body = f"/cds-services/rpl-{hook}", tmp / f"{hook}-no-prefetch.json"
                body.write_bytes(workload.body(hook, fhir_server=fhir.base_url, prefetch=False))
                results.fetch_cards[hook] = cards_of(service.post(path, body.read_bytes()))
                for c in CONCURRENCY:
                    print(f"no prefetch {hook:<13} c={c:<3}", end=" ", file=sys.stderr, flush=True)
                    results.no_prefetch[hook, c] = load([service.url + path], body=body, concurrency=c,
                                                        server=service, **timing)
                    print(f"p50 {results.no_prefetch[hook, c]['p50_ms']:.1f} ms", file=sys.stderr)

        results.memory = {name: [(pid, vm_kib(pid, "VmHWM"), vm_kib(pid, "VmRSS")) for pid in proc.workers()]
                          for name, proc in (("rpl-cds", service), ("null", null))}
        errors = [line for p in (service, *variants.values()) for line in p.log.read_text(errors="replace").splitlines()
                  if '"level": "ERROR"' in line]
        results.service_errors = len(errors)
        results.error_lines = [line[:600] for line in errors[:3]]
    if not commit and code_state() != code:
        results.code += f" when the servers started; {code_state()} at the end"
    return results


# -- judging and reporting ---------------------------------------------------------------------
def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def prefetch_verdicts(cases: dict[tuple[str, int], tuple[dict, dict]],
                      label: str = "") -> list[tuple[str, bool | None, str]]:
    """The three targets with prefetch, over the cases measured (service, null) per (hook, concurrency)."""
    verdicts = []
    hooks = sorted({h for h, _ in cases}, key=HOOKS.index)
    hook = max(hooks, key=lambda h: cases[h, 8][0]["p99_ms"])
    p99 = cases[hook, 8][0]["p99_ms"]
    floor = max(cases[h, 8][1]["p99_ms"] for h in hooks)
    verdicts.append((
        f"p99 <= {P99_LIMIT_MS:g} ms at concurrency 8, with prefetch{label}", p99 <= P99_LIMIT_MS,
        f"worst {hook}: {p99:.1f} ms" + ("" if p99 <= P99_LIMIT_MS else
                                         f", {p99 - P99_LIMIT_MS:.1f} ms ({p99 / P99_LIMIT_MS:.1f}x) over")
        + f"; the null service's own p99 at concurrency 8: up to {floor:.1f} ms"))
    ratios = {k: ratio(s["p50_ms"], n["p50_ms"]) for k, (s, n) in cases.items()}
    (hook, c), worst = max(ratios.items(), key=lambda kv: kv[1])
    verdicts.append((
        f"p50 <= {P50_RATIO_LIMIT:g} x null p50, with prefetch{label} (every hook and concurrency)",
        worst <= P50_RATIO_LIMIT, f"worst {hook} c={c}: {worst:.1f} x" + (
            "" if worst <= P50_RATIO_LIMIT else f", {worst / P50_RATIO_LIMIT:.1f}x the limit")
        + "; at c=1: " + ", ".join(f"{ratios[h, 1]:.1f} x" for h in hooks)))
    shares = {k: ratio(s["rps"], n["rps"]) for k, (s, n) in cases.items()}
    (hook, c), worst = min(shares.items(), key=lambda kv: kv[1])
    verdicts.append((
        f"throughput >= {THROUGHPUT_RATIO_MIN:.0%} of null, with prefetch{label} (every hook and concurrency)",
        worst >= THROUGHPUT_RATIO_MIN, f"worst {hook} c={c}: {worst:.0%}" + (
            "" if worst >= THROUGHPUT_RATIO_MIN else f", {THROUGHPUT_RATIO_MIN / worst:.1f}x short")))
    return verdicts


def judge(r: Results) -> list[tuple[str, bool | None, str]]:
    """PASS/FAIL per target, each judged on its worst case; a FAIL says by how much."""
    verdicts = prefetch_verdicts(r.prefetch)
    if not r.no_prefetch:
        verdicts.append((f"FHIR round trips in sequence <= {SEQUENTIAL_LIMIT}, without prefetch", None, r.fhir_note))
        verdicts.append((f"p50 <= FHIR reads p50 + {FETCH_OVERHEAD_MS:g} ms, without prefetch", None, r.fhir_note))
        return verdicts
    hook = max(HOOKS, key=lambda h: r.traced[h]["waves"])
    n = r.traced[hook]["waves"]
    ok = n <= SEQUENTIAL_LIMIT and all(t["statuses"] == [200] for t in r.traced.values())
    verdicts.append((f"FHIR round trips in sequence <= {SEQUENTIAL_LIMIT}, without prefetch", ok,
                     f"worst {hook}: {n} in sequence, {r.traced[hook]['reads']} reads per call"))
    limit = r.read_set["p50_ms"] + FETCH_OVERHEAD_MS
    hook = max(HOOKS, key=lambda h: r.no_prefetch[h, 1]["p50_ms"])
    p50 = r.no_prefetch[hook, 1]["p50_ms"]
    verdicts.append((
        f"p50 <= FHIR reads p50 + {FETCH_OVERHEAD_MS:g} ms, without prefetch (concurrency 1)", p50 <= limit,
        f"worst {hook}: {p50:.1f} ms vs {r.read_set['p50_ms']:.1f} + {FETCH_OVERHEAD_MS:g} = {limit:.1f} ms"
        + ("" if p50 <= limit else f", {p50 - limit:.1f} ms over")))
    return verdicts


def short(url: str) -> str:
    """A FHIR URL for a table: relative to the base, the patient id as {id}, the long code list counted."""
    parts = urlsplit(url)
    query = re.sub(r"code=([^&]*)", lambda m: f"code=({m.group(1).count(',') + 1} codes)", parts.query)
    name = parts.path.split("/fhir/", 1)[-1] + (f"?{query}" if query else "")
    return name.replace(PATIENT_ID, "{id}")


def export_commit(revision: str, into: Path) -> tuple[Path, str]:
    """The service's code at one commit, exported with git archive (read-only for the repository),
    so that a run measures exactly that commit whatever is being edited in the working tree."""
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", revision], capture_output=True, text=True, check=True)
    sha = commit.stdout.strip()
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run([*git, "archive", sha, "service", "cards", "fhir_mappings"], capture_output=True,
                             check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into, f"commit {sha} (exported with git archive: uncommitted changes in the working tree are not in it)"


def code_state() -> str:
    """Which code is in the working tree: the commit, and whether the service's code has uncommitted changes."""
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    if not commit:
        return f"not a git checkout ({ROOT})"
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "service", "cards", "fhir_mappings"],
                           capture_output=True, text=True).stdout.splitlines()
    dirty = [line[3:] for line in dirty]
    return f"commit {commit}" + (f" with uncommitted changes in {', '.join(dirty)}" if dirty else "")


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), cpu)
    return (f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, Python {platform.python_version()}, "
            f"gunicorn {metadata.version('gunicorn')}, Flask {metadata.version('flask')}, "
            f"pydantic {metadata.version('pydantic')}, fhir.resources {metadata.version('fhir.resources')}")


def environment(timing: dict[str, Any], code: str) -> list[str]:
    return [
        f"- Machine: {machine()}.",
        f"- Code: {code}.",
        f"- Servers: `rpl-cds serve` and bench/null_app.py, both gunicorn gthread, {WORKERS} workers x {THREADS} "
        "threads, on 127.0.0.1; authentication off (`RPL_AUTH_ENABLED=false`), audit log on (INFO, to a file). "
        "The null service parses with orjson and sets the garbage collector as the service does.",
        f"- Load: bench/loadgen.py in its own process, keep-alive, closed loop; per case {timing['warmup']} s warm-up, "
        f"then {timing['duration']} s measured (at most {timing['max_requests']} requests where the service runs alone). "
        "Percentiles nearest-rank. "
        "Every request carries a new hookInstance, as an EHR's calls do; the rest of the body is the same.",
    ]


def report(r: Results) -> tuple[str, bool]:
    """The Markdown report, and whether every target passed."""
    hooks_cards = "; ".join(f"{h}: {', '.join(r.cards[h]) or 'none'}" for h in HOOKS)
    lines = [
        f"# Hook latency and throughput, {r.run_date.isoformat()}",
        "",
        "`.venv/bin/python bench/run.py` (issue #7). The null service is the same stack answering "
        '`{"cards": []}`; ratios compare the service with it, measured in the same case by one load process '
        f"sending to them in turns of {ALTERNATE_S:g} s ({r.timing['duration']:g} s measured each).",
        "",
        *environment(r.timing, r.code),
        f"- Workload (bench/workloads.py): one patient with {r.counts['Observation']} Observations (routine labs no "
        f"rule reads, 6 years of TSH/FT4, TPO, 2 antiphospholipid panels), {r.counts['Condition']} Conditions, "
        f"{r.counts['MedicationRequest']} MedicationRequests; 5 draft orders on order-select (1 selected) and "
        "order-sign. Bodies: " + ", ".join(f"{h} {r.sizes[h] // 1000} kB" for h in HOOKS) + ".",
        f"- Cards: {hooks_cards}.",
        "",
        "## With prefetch",
        "",
        "| hook | concurrency | p50 ms | p95 ms | p99 ms | req/s | null p50 ms | null p99 ms | null req/s "
        "| p50 / null | req/s / null | connections per worker (null) | errors |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for (hook, c), (svc, base) in r.prefetch.items():
        lines.append(
            f"| {hook} | {c} | {svc['p50_ms']:.1f} | {svc['p95_ms']:.1f} | {svc['p99_ms']:.1f} | {svc['rps']:.0f} "
            f"| {base['p50_ms']:.1f} | {base['p99_ms']:.1f} | {base['rps']:.0f} "
            f"| {ratio(svc['p50_ms'], base['p50_ms']):.1f} | {ratio(svc['rps'], base['rps']):.2f} "
            f"| {svc['placement']} ({base['placement']}) | {svc['errors'] + base['errors']} |")
    for variant in VARIANTS:
        if not r.variants.get(variant.name):
            continue
        lines += [
            "",
            f"### With prefetch, {variant.heading}",
            "",
            f"{variant.what} The null service is the one measured for the same case above; "
            f"{VARIANT_TIMING['warmup']:g} s warm-up, then {VARIANT_TIMING['duration']:g} s measured.",
            "",
            "| hook | concurrency | p50 ms | p95 ms | p99 ms | req/s | p50 / null | req/s / null | errors |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for (hook, c), (off, base) in r.variants[variant.name].items():
            lines.append(
                f"| {hook} | {c} | {off['p50_ms']:.1f} | {off['p95_ms']:.1f} | {off['p99_ms']:.1f} | {off['rps']:.0f} "
                f"| {ratio(off['p50_ms'], base['p50_ms']):.1f} | {ratio(off['rps'], base['rps']):.2f} "
                f"| {off['errors']} |")
    lines += [
        "",
        "Connections per worker: the load's keep-alive connections held by each gunicorn worker, sampled during the "
        "case. gthread serves a connection on the worker that accepted it, so when one worker holds them all only "
        "one core works for it (about half the throughput).",
    ]

    lines += ["", "## Without prefetch (the service fetches from sekmet-fhir on 127.0.0.1)", ""]
    if r.fhir_note:
        lines.append(f"**{r.fhir_note}**")
    else:
        lines += [
            "| hook | concurrency | p50 ms | p95 ms | p99 ms | req/s | FHIR reads per call | in sequence "
            "| most in flight | connections per worker | errors |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for (hook, c), row in r.no_prefetch.items():
            t = r.traced[hook]
            lines.append(f"| {hook} | {c} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} | {row['p99_ms']:.1f} "
                         f"| {row['rps']:.0f} | {t['reads']} | {t['waves']} | {t['in_flight']} | {row['placement']} "
                         f"| {row['errors']} |")
        same = r.fetch_cards == r.cards
        lines += [
            "",
            f"FHIR round trips counted by bench/fhir_proxy.py over {TRACED_CALLS} calls per hook (worst call; "
            "\"in sequence\" = longest chain of reads each sent after the previous one was answered), with every "
            f"answer held back {r.proxy_delay * 1000:.0f} ms so that parallel reads cannot look sequential; a traced "
            "call then took " + ", ".join(f"{h} {r.traced[h]['wall_ms']:.0f} ms" for h in HOOKS) + ". Cards "
            + ("the same as with prefetch." if same else
               "**differ** from prefetch: " + "; ".join(f"{h}: {', '.join(r.fetch_cards[h])}" for h in HOOKS) + "."),
            "",
            "The FHIR server's own reads (the service's prefetch templates), measured directly with the same client "
            "at concurrency 1:",
            "",
            "| read | p50 ms | p99 ms | p50 ms when all are sent at once |",
            "|---|--:|--:|--:|",
        ]
        for url, row in r.reads.items():
            lines.append(f"| `{short(url)}` | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} "
                         f"| {r.read_set['per_url_p50_ms'][url]:.1f} |")
        lines += [
            f"| **all {len(r.reads)} at once** (as the service fetches them) | **{r.read_set['p50_ms']:.1f}** "
            f"| {r.read_set['p99_ms']:.1f} | |",
        ]

    lines += ["", "## Peak memory per worker", "", "| server | worker pid | VmHWM MiB | VmRSS MiB |",
              "|---|--:|--:|--:|"]
    for name, workers in r.memory.items():
        for pid, hwm, rss in workers:
            lines.append(f"| {name} | {pid} | {(hwm or 0) / 1024:.1f} | {(rss or 0) / 1024:.1f} |")
    if r.service_errors:
        lines += ["", f"**The service logged {r.service_errors} ERROR lines during the run**, the first ones:", ""]
        lines += [f"    {line}" for line in r.error_lines]

    verdicts = judge(r)
    lines += ["", "## Targets", "", "| target | result | measured |", "|---|---|---|"]
    for target, ok, detail in verdicts:
        lines.append(f"| {target} | {'PASS' if ok else 'NOT RUN' if ok is None else '**FAIL**'} | {detail} |")
    for variant in VARIANTS:
        if not r.variants.get(variant.name):
            continue
        lines += ["", f"For information, the same targets with the {variant.heading} (not part of the verdict: "
                  "production runs with both caches on):", "", "| target | result | measured |", "|---|---|---|"]
        for target, ok, detail in prefetch_verdicts(r.variants[variant.name], f", {variant.name}"):
            lines.append(f"| {target} | {'pass' if ok else 'fail'} | {detail} |")
    return "\n".join(lines) + "\n", all(ok for _, ok, _ in verdicts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds of warm-up per case")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured per case at most")
    parser.add_argument("--max-requests", type=int, default=3000, help="requests measured per case at most")
    parser.add_argument("--out", type=Path, help="report file (default bench/results/<date>.md)")
    parser.add_argument("--commit", metavar="REV",
                        help="measure the service's code of this commit (e.g. HEAD) instead of the working tree")
    args = parser.parse_args(argv)
    started = time.monotonic()
    workload = Workload(date.today())
    out = args.out or BENCH / "results" / f"{workload.today.isoformat()}.md"
    timing = dict(warmup=args.warmup, duration=args.duration, max_requests=args.max_requests)
    with tempfile.TemporaryDirectory(prefix="rpl-bench-") as tmp:
        results = measure(workload, timing, Path(tmp), args.commit)
    text, passed = report(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"written to {out} ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
