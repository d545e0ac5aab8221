"""Where a hook call's time goes, before anyone optimises (issue #7).

    .venv/bin/pip install pyinstrument      # once; a bench tool, not a dependency of the service
    .venv/bin/python bench/profile_hooks.py                 # the working tree as it is
    .venv/bin/python bench/profile_hooks.py --commit HEAD   # exactly the service's code of a commit

Runs the service in this process (create_app, settings as in bench/run.py: no
authentication, a temporary SQLite file, audit log on) and calls each hook with the
heavy patient of bench/workloads.py (full prefetch) through Flask's test client, in
four passes of the same calls:
1. plain: wall time per call, the share spent in garbage collection and its pauses;
2. stage clock: the view's steps (JSON, validation, prefetch, facts, rules, rendering)
   are wrapped with a timer in this process only (about 1 microsecond each; nothing in
   service/ is changed), which gives each stage's share without profiler distortion;
3. pyinstrument: the functions with the most time of their own, and the call tree.
   It hooks every call, so code making many small calls looks heavier than it is:
   read its shares as "where within a stage", the stage clock for "which stage";
4. cProfile: only how often the hot functions are called per hook call.
The garbage collector is set as `rpl-cds serve` sets it; if the service leaves it at
Python's defaults, the plain pass runs again after gc.freeze(), to show what the long
full collections cost. Last, the stage clock without prefetch, the app fetching from sekmet-fhir loaded
with the same patient (as bench/run.py does).

Writes bench/results/profile-<date>.md and prints it. Named profile_hooks, not
profile, so that it does not hide the standard library's profile module.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from datetime import date
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

from pyinstrument import Profiler  # noqa: E402
from pyinstrument.renderers import ConsoleRenderer  # noqa: E402

from workloads import HOOKS, Workload  # noqa: E402

WARMUP_CALLS = 20
PACKAGES = ("service", "cards", "fhir_mappings", "pydantic")  # whose functions are counted
COUNTED = ("parse", "classify", "model_validate", "resources_in", "subject_id", "_order", "_conditions",
           "_newest_usable", "render_card")


def make_app(tmp: Path, name: str, **settings: Any):
    from service import create_app
    from service.config import Settings

    settings = Settings(database_url=f"sqlite:///{tmp / f'{name}.sqlite3'}", auth_enabled=False, **settings)
    with redirect_stdout(open(os.devnull, "w")):  # the audit log is written (part of a call), to nowhere
        return create_app(settings)


def serve_gc() -> tuple[bool, str]:
    """The garbage collector as `rpl-cds serve` sets it in its workers (service.cli.tune_gc, when
    the service has one), so the profile sees what production sees: (tuned, how, for the report)."""
    try:
        from service.cli import tune_gc
    except ImportError:
        return False, "Python's defaults, as `rpl-cds serve` leaves them"
    tune_gc()
    return True, (f"as `rpl-cds serve` sets it (`service.cli.tune_gc`): thresholds {gc.get_threshold()}, "
                  f"{gc.get_freeze_count()} start-up objects frozen")


def post(client, path: str, body: bytes) -> None:
    answer = client.post(path, data=body, content_type="application/json")
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]


# -- pass 1: plain wall time ---------------------------------------------------------------
def plain(client, path: str, body: bytes, calls: int) -> dict[str, Any]:
    """Wall time per call; garbage collection's share, and its longest pause per generation."""
    gc_time, gc_started = 0.0, 0.0
    pauses: dict[int, list[float]] = defaultdict(list)

    def on_gc(phase: str, info: dict) -> None:
        nonlocal gc_time, gc_started
        if phase == "start":
            gc_started = time.perf_counter()
        else:
            pause = time.perf_counter() - gc_started
            gc_time += pause
            pauses[info["generation"]].append(pause)

    times = []
    gc.callbacks.append(on_gc)
    try:
        for _ in range(calls):
            t0 = time.perf_counter()
            post(client, path, body)
            times.append(time.perf_counter() - t0)
    finally:
        gc.callbacks.remove(on_gc)
    times.sort()
    return {"p50": statistics.median(times) * 1000, "mean": statistics.fmean(times) * 1000,
            "p95": times[int(0.95 * (len(times) - 1))] * 1000, "max": times[-1] * 1000,
            "gc_share": gc_time / sum(times),
            "gc": {gen: (len(p) / calls, max(p) * 1000) for gen, p in sorted(pauses.items())}}


# -- pass 2: stage clock ---------------------------------------------------------------------
class StageClock:
    """Seconds per stage, summed over calls, from timers wrapped around the view's steps."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()  # the FHIR reads are timed in the service's fetch threads

    def wrap(self, stage: str, function: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - t0
                with self._lock:
                    self.seconds[stage] += elapsed
        return timed


class _TimedModel:
    """Stands in for a pydantic model class where the view calls Model.model_validate(...)."""

    def __init__(self, model: type, clock: StageClock):
        self.model_validate = clock.wrap("validate", model.model_validate)


class _TimedParser:
    """Stands in for the JSON module service.protocol parses with (json or orjson), timing loads."""

    def __init__(self, module: Any, clock: StageClock):
        self._module = module
        self.loads = clock.wrap("json_loads", module.loads)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


@contextmanager
def stage_clock(app) -> Iterator[StageClock]:
    """Wrap the names the view looks up at call time (module globals), and put them back after.
    Names the service no longer has are skipped: their rows are left out of the table."""
    import fhir_mappings.extract as extract_module
    import fhir_mappings.facts_cache as facts_cache
    import service.api as api
    import service.prefetch as prefetch
    import service.protocol as protocol
    from fhir_mappings.facts_cache import FactsCache
    from service.fhir_client import FhirClient

    clock = StageClock()
    wanted = [
        (api, "_json_body", lambda f: clock.wrap("json_body", f)),
        (api, "load_json", lambda f: clock.wrap("load_json", f)),
        (protocol, "json", lambda f: _TimedParser(f, clock)),
        (protocol, "orjson", lambda f: _TimedParser(f, clock)),
        (api, "HookRequest", lambda f: _TimedModel(f, clock)),
        (api, "CONTEXTS", lambda f: {hook: _TimedModel(model, clock) for hook, model in f.items()}),
        (api, "resolve", lambda f: clock.wrap("resolve", f)),
        (prefetch, "_fetch_one", lambda f: clock.wrap("fetch_one", f)),
        (FhirClient, "_body", lambda f: clock.wrap("fhir_body", f)),
        (api, "gather", lambda f: clock.wrap("gather", f)),  # before the facts cache (issue #7)
        (api, "extract", lambda f: clock.wrap("extract", f)),
        (FactsCache, "facts", lambda f: clock.wrap("facts", f)),
        (facts_cache, "record_key", lambda f: clock.wrap("record_key", f)),
        (facts_cache, "gather_record", lambda f: clock.wrap("gather", f)),
        (facts_cache, "extract_record", lambda f: clock.wrap("extract", f)),
        (facts_cache, "gather_drafts", lambda f: clock.wrap("drafts", f)),
        (facts_cache, "with_drafts", lambda f: clock.wrap("drafts", f)),
        (extract_module, "parse", lambda f: clock.wrap("parse", f)),
        (api, "evaluate", lambda f: clock.wrap("evaluate", f)),
        (api, "render_card", lambda f: clock.wrap("render_card", f)),
        (api, "CdsResponse", lambda f: clock.wrap("response", f)),
        (api, "jsonify", lambda f: clock.wrap("response", f)),
    ]
    present = [(owner, name, make) for owner, name, make in wanted if hasattr(owner, name)]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in present]
    view = app.view_functions["cds.call_service"]
    try:
        for owner, name, make in present:
            setattr(owner, name, make(getattr(owner, name)))
        app.view_functions["cds.call_service"] = clock.wrap("view", view)
        yield clock
    finally:
        app.view_functions["cds.call_service"] = view
        for owner, name, original in saved:
            setattr(owner, name, original)


def stages(client, app, path: str, body: bytes, calls: int) -> list[tuple[str, float]]:
    """(stage, ms per call); indented rows are part of the row above. Rows not measured are left out."""
    with stage_clock(app) as clock:
        t0 = time.perf_counter()
        for _ in range(calls):
            post(client, path, body)
        total = time.perf_counter() - t0
    s = defaultdict(float, {k: v / calls * 1000 for k, v in clock.seconds.items()})
    total = total / calls * 1000
    facts_cached = "facts" in clock.seconds
    top = ("json_body", "validate", "resolve", *(("facts",) if facts_cached else ("gather", "extract")),
           "evaluate", "render_card", "response")
    under = "  " if facts_cached else ""
    rows = [
        ("JSON: read the body, parse, check the input limits (`_json_body`)", s["json_body"]),
        ("  parsing (`loads`)", s["json_loads"]),
        ("  input limits: the rest of `service.protocol.load_json`" if "json_loads" in clock.seconds
         else "  parsing and input limits (`service.protocol.load_json`)", s["load_json"] - s["json_loads"]),
        ("  `request.get_data`", s["json_body"] - s["load_json"]),
        ("request validation (`HookRequest`, context models)", s["validate"]),
        ("prefetch: `resolve` (fetches missing keys, in parallel)", s["resolve"]),
        ("  the reads added up (`_fetch_one`, in the fetch threads)", s["fetch_one"]),
        ("  of which reading and decoding FHIR JSON (`FhirClient._body`)", s["fhir_body"]),
        ("facts: `FactsCache.facts` (the record's facts remembered, then the draft orders)", s["facts"]),
        ("  the record's key (`record_key`: its JSON)", s["record_key"]),
        (f"{under}prefetch: `gather` the record (flatten Bundles, check subjects)", s["gather"]),
        (f"{under}facts: `extract` (the record's own resources)", s["extract"]),
        (f"{under}  of which fhir.resources validation (`resources.parse`)", s["parse"]),
        ("  the draft orders (`gather_drafts`, `with_drafts`)", s["drafts"]),
        ("rules: `evaluate`", s["evaluate"]),
        ("rendering: `render_card`", s["render_card"]),
        ("rendering: `CdsResponse` model and `jsonify`", s["response"]),
        ("rest of the view (model dump, translator, order builder)", s["view"] - sum(s[k] for k in top)),
        ("Flask, audit log, test client (outside the view)", total - s["view"]),
        ("**total per call (instrumented)**", total),
    ]
    return [(name, ms) for name, ms in rows
            if not (name.startswith("  ") and ms < 0.005) and (facts_cached or not name.startswith("facts: `Facts"))]


# -- pass 3: pyinstrument; pass 4: cProfile --------------------------------------------------------
def own_times(root) -> dict[tuple[str, str], float]:
    """Self time per function over the whole tree."""
    own: dict[tuple[str, str], float] = defaultdict(float)

    def visit(frame) -> None:
        if frame.is_synthetic:
            return
        own[frame.function, f"{frame.file_path_short}:{frame.line_no}"] += frame.time - sum(
            c.time for c in frame.children if not c.is_synthetic)
        for child in frame.children:
            visit(child)

    visit(root)
    return own


def sampled(client, path: str, body: bytes, calls: int) -> tuple[dict[tuple[str, str], float], float, str]:
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for _ in range(calls):
        post(client, path, body)
    profiler.stop()
    root = profiler.last_session.root_frame()
    tree = profiler.output(ConsoleRenderer(unicode=False, color=False, short_mode=True,
                                           processor_options={"filter_threshold": 0.02}))
    lines = [line for line in tree.splitlines() if line.strip() and not line.startswith(".....")]
    start = next((i for i, line in enumerate(lines) if "call_service" in line), 0)
    return own_times(root), root.time, "\n".join(lines[start:start + 60])


def call_counts(client, path: str, body: bytes, calls: int) -> dict[str, float]:
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(calls):
        post(client, path, body)
    profile.disable()
    counts: dict[str, float] = defaultdict(float)
    for (file, _line, function), (_cc, ncalls, *_rest) in pstats.Stats(profile).stats.items():
        if function in COUNTED and any(f"/{package}/" in file for package in PACKAGES):
            counts[function] += ncalls / calls
    return counts


def what_if_frozen(client, workload: Workload, calls: int) -> dict[str, Any]:
    """The long full collections: how long one takes here, and the calls again after gc.freeze()
    (start-up objects moved out of the collector's reach; in this process only)."""
    gc.collect()  # the profilers' garbage first, then time a collection of what a worker holds
    t0 = time.perf_counter()
    gc.collect()
    full = (time.perf_counter() - t0) * 1000
    tracked = len(gc.get_objects())
    gc.freeze()
    try:
        again = {hook: plain(client, f"/cds-services/rpl-{hook}", workload.body(hook), calls) for hook in HOOKS}
    finally:
        gc.unfreeze()
    return {"full_ms": full, "tracked": tracked, "plain": again}


def facts_cache_off(tmp: Path, workload: Workload, calls: int) -> dict[str, Any] | None:
    """The stage clock with RPL_FACTS_CACHE_SIZE=0: every call gathers the record and extracts its
    facts, as the first call with a record does. None for code without the facts cache."""
    from service.config import Settings

    if "facts_cache_size" not in Settings.model_fields:
        return None
    app = make_app(tmp, "facts-off", facts_cache_size=0)
    client = app.test_client()
    results = {}
    for hook in HOOKS:
        path, body = f"/cds-services/rpl-{hook}", workload.body(hook)
        print(f"profiling {hook} with the facts cache off ...", file=sys.stderr)
        for _ in range(WARMUP_CALLS):
            post(client, path, body)
        results[hook] = {"plain": plain(client, path, body, calls), "stages": stages(client, app, path, body, calls)}
    return results


def without_prefetch(tmp: Path, workload: Workload, calls: int) -> dict[str, Any]:
    """The same stage clock when the app fetches everything from a real FHIR server (sekmet-fhir,
    started and loaded as bench/run.py does), next to that server's own time for the reads."""
    from run import load, start_fhir
    from tests import fhir_server

    try:
        server = start_fhir(tmp, workload)
    except fhir_server.FhirServerUnavailable as exc:
        return {"note": f"not measured: the FHIR server could not be started ({exc})"}
    try:
        app = make_app(tmp, "fetching", fhir_server_allowlist=(server.base_url,))
        client = app.test_client()
        templates = client.get("/cds-services").get_json()["services"][0]["prefetch"].values()
        urls = [f"{server.base_url}/{t.replace('{{context.patientId}}', workload.patient['id'])}" for t in templates]
        reads = load(urls, parallel=True, warmup=0.3, duration=1.5, max_requests=300)
        results = {}
        for hook in HOOKS:
            path, body = f"/cds-services/rpl-{hook}", workload.body(hook, fhir_server=server.base_url, prefetch=False)
            print(f"profiling {hook} without prefetch ...", file=sys.stderr)
            for _ in range(WARMUP_CALLS):
                post(client, path, body)
            results[hook] = {"plain": plain(client, path, body, calls), "stages": stages(client, app, path, body, calls)}
        return {"reads_p50": reads["p50_ms"], "reads": len(urls), "results": results}
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="hook calls per hook and pass")
    parser.add_argument("--out", type=Path, help="default bench/results/profile-<date>.md")
    parser.add_argument("--commit", metavar="REV",
                        help="profile the service's code of this commit (e.g. HEAD) instead of the working tree")
    args = parser.parse_args(argv)
    from run import code_state, export_commit, machine

    exported = tempfile.TemporaryDirectory(prefix="rpl-profile-code-")
    if args.commit:  # imported from the export, before the editable install of the working tree
        code_dir, code = export_commit(args.commit, Path(exported.name))
        sys.path.insert(0, str(code_dir))
    else:
        code = code_state()
    today = date.today()
    out = args.out or BENCH / "results" / f"profile-{today.isoformat()}.md"
    workload = Workload(today)
    results = {}
    with tempfile.TemporaryDirectory(prefix="rpl-profile-") as tmp:
        app = make_app(Path(tmp), "prefetch")
        client = app.test_client()
        tuned, gc_setting = serve_gc()
        for hook in HOOKS:
            path, body = f"/cds-services/rpl-{hook}", workload.body(hook)
            print(f"profiling {hook} ...", file=sys.stderr)
            for _ in range(WARMUP_CALLS):
                post(client, path, body)
            results[hook] = {
                "plain": plain(client, path, body, args.calls),
                "stages": stages(client, app, path, body, args.calls),
                "sampled": sampled(client, path, body, args.calls),
                "counts": call_counts(client, path, body, min(args.calls, 50)),
                "size": len(body),
            }
        facts_off = facts_cache_off(Path(tmp), workload, args.calls)
        frozen = None if tuned else what_if_frozen(client, workload, args.calls)
        fetched = without_prefetch(Path(tmp), workload, max(args.calls // 2, 10))
    text = report(today, args.calls, results, facts_off, frozen, fetched,
                  f"- Machine: {machine()}.\n- Code: {code}.\n- Garbage collector: {gc_setting}.")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"written to {out}", file=sys.stderr)
    return 0


def what_if_section(results: dict[str, dict[str, Any]], frozen: dict[str, Any]) -> list[str]:
    return [
        "## The slowest calls: full garbage collections",
        "",
        f"One full collection (`gc.collect()`, nothing to free) takes {frozen['full_ms']:.0f} ms in this process "
        f"({frozen['tracked']} objects tracked, nearly all from start-up: modules, models, value sets), and the "
        "heavy requests trigger one every " + ", ".join(
            f"{1 / r['plain']['gc'][2][0]:.0f}" for r in results.values() if r["plain"]["gc"].get(2))
        + " calls: that pause is the slowest call above, and it sets the p99 at concurrency 1 in bench/run.py. "
        "The same calls again after `gc.freeze()` (start-up objects kept out of the collector's reach; tried in "
        "this process only, the service is unchanged):",
        "",
        "| | " + " | ".join(results) + " |",
        "|---|" + "--:|" * len(results),
        "| p50 / p95 / slowest ms, as above | " + " | ".join(
            f"{r['plain']['p50']:.1f} / {r['plain']['p95']:.1f} / {r['plain']['max']:.1f}" for r in results.values())
        + " |",
        "| p50 / p95 / slowest ms, after `gc.freeze()` | " + " | ".join(
            f"{p['p50']:.1f} / {p['p95']:.1f} / {p['max']:.1f}" for p in frozen["plain"].values()) + " |",
        "| garbage collection share, as above / after | " + " | ".join(
            f"{r['plain']['gc_share']:.0%} / {frozen['plain'][h]['gc_share']:.0%}" for h, r in results.items()) + " |",
        "",
    ]


def stage_table(results: dict[str, dict[str, Any]]) -> list[str]:
    """Stages as rows, hooks as columns: ms per call and share of the call."""
    lines = [
        "| stage | " + " | ".join(results) + " |",
        "|---|" + "--:|" * len(results),
        "| **wall time per call, p50 without instruments** | "
        + " | ".join(f"**{r['plain']['p50']:.1f}**" for r in results.values()) + " |",
        "| p95 / slowest call | " + " | ".join(f"{r['plain']['p95']:.1f} / {r['plain']['max']:.1f}"
                                               for r in results.values()) + " |",
        "| garbage collection, share of the wall time | "
        + " | ".join(f"{r['plain']['gc_share']:.0%}" for r in results.values()) + " |",
        "| collections per call, longest pause ms, by generation | " + " | ".join(
            "; ".join(f"gen{gen}: {n:.2g}, {longest:.1f}" for gen, (n, longest) in r["plain"]["gc"].items())
            or "none" for r in results.values()) + " |",
    ]
    names = list(dict.fromkeys(name for r in results.values() for name, _ in r["stages"]))
    for name in names:
        cells = []
        for r in results.values():
            ms, total = dict(r["stages"]).get(name), r["stages"][-1][1]
            share = f" ({ms / total:.0%})" if ms is not None and ms <= total else ""  # parallel reads add up to more
            cells.append("" if ms is None else f"{ms:.2f}{share}")
        label = name if not name.startswith("  ") else "&nbsp;&nbsp;&nbsp;" + name.strip()
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def report(today: date, calls: int, results: dict[str, dict[str, Any]], facts_off: dict[str, Any] | None,
           frozen: dict[str, Any] | None,
           fetched: dict[str, Any], environment: str) -> str:
    lines = [
        f"# Profile of the hook calls, {today.isoformat()}",
        "",
        "`.venv/bin/python bench/profile_hooks.py`: the service in one process (`create_app`, no authentication, "
        "audit log on), each hook called through Flask's test client with the heavy patient of bench/workloads.py "
        "and full prefetch (" + ", ".join(f"{h} {r['size'] // 1000} kB" for h, r in results.items()) + "), "
        f"{WARMUP_CALLS} warm-up calls, then {calls} calls per pass. One thread, no network: this is the CPU cost "
        "of a call, without queueing.",
        "",
        environment,
        "",
        "## Time per stage (stage clock, ms per call)",
        "",
        *stage_table(results),
    ]
    lines += ["", "Indented rows are part of the row above them. The same record comes at every call, so its "
              "facts come from the facts cache (`RPL_FACTS_CACHE_SIZE`, on by default): the record is gathered "
              "and extracted only in the warm-up.", ""]
    if facts_off is not None:
        lines += [
            "## With the facts cache off (`RPL_FACTS_CACHE_SIZE=0`)",
            "",
            "Every call gathers the record and extracts its facts, as the first call with a record does (the "
            "validation cache stays on: the resources are not validated again).",
            "",
            *stage_table(facts_off),
            "",
        ]
    if frozen is not None:
        lines += what_if_section(results, frozen)
    lines += ["## Without prefetch: the app fetches from sekmet-fhir", ""]
    if "note" in fetched:
        lines += [fetched["note"], ""]
    else:
        lines += [
            "The same heavy patient on a local sekmet-fhir server (only what the prefetch templates ask for comes "
            "back: the Observations of the rules' codes, active orders), no prefetch in the request, "
            f"{max(calls // 2, 10)} calls per pass. The FHIR server's own time for the {fetched['reads']} reads sent at once "
            f"(bench/loadgen.py, p50): **{fetched['reads_p50']:.1f} ms**.",
            "",
            *stage_table(fetched["results"]),
            "",
        ]

    for hook, r in results.items():
        own, total, tree = r["sampled"]
        lines += [
            f"## {hook}: functions with the most time of their own (pyinstrument)",
            "",
            "| function | where | share of the call |",
            "|---|---|--:|",
        ]
        for (function, where), seconds in sorted(own.items(), key=lambda kv: -kv[1])[:12]:
            lines.append(f"| `{function}` | {where} | {seconds / total:.1%} |")
        lines += [
            "",
            "Calls per hook call (cProfile): "
            + ", ".join(f"`{name}` {r['counts'][name]:.0f}" for name in COUNTED if r["counts"].get(name)) + ".",
            "",
            "<details><summary>pyinstrument call tree from the view down (seconds over all calls; nodes of 2 % "
            "and more)</summary>",
            "",
            "```",
            tree,
            "```",
            "",
            "</details>",
            "",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
