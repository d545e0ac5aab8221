"""The ``rpl-cds`` command: serve the service, and try it from a terminal."""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

EXAMPLES = ("patient-view", "order-select", "order-sign")
# Where command (a) of the README and `rpl-cds serve` put the service; `demo` and `call`
# call it there unless told otherwise. With authentication on, the JWT's aud is this URL
# plus the path, so the service's RPL_PUBLIC_BASE_URL must name the same host (or be unset).
DEFAULT_SERVICE_URL = "http://127.0.0.1:8080"
SETTINGS_EPILOG = (
    "The service's own settings are RPL_* environment variables, checked at start (a bad value stops it "
    "with a message naming the variable); README.md, section Configuration, lists them all. The main ones: "
    "RPL_AUTH_ENABLED, RPL_AUTH_ISSUERS, RPL_PUBLIC_BASE_URL, RPL_FHIR_SERVER_ALLOWLIST, RPL_DATABASE_URL, "
    "RPL_REPLAY_CACHE_URL, RPL_LANGUAGE, RPL_LOG_LEVEL."
)


class _Help(argparse.HelpFormatter):
    """Every option's default in its help line, where it has one worth saying."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class _Version(argparse.Action):
    """--version, read from the installed package's metadata only when asked for."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"rpl-cds {package_version()}")
        parser.exit()


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rpl-cds")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown (not installed)"


def default_tester_key() -> Path:
    """The tester's private key lives in the user's configuration folder, outside any working
    tree, so that it cannot be committed by accident."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "rpl-cds" / "tester-key.pem"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rpl-cds", description="CDS Hooks service for recurrent pregnancy loss.", epilog=SETTINGS_EPILOG,
        formatter_class=_Help,
    )
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, epilog: str = "") -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help, formatter_class=_Help,
                                   epilog=f"{epilog} {SETTINGS_EPILOG}".strip())

    serve = command("serve", "run the service under gunicorn (production WSGI server)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: all interfaces)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on")
    serve.add_argument("--workers", type=int, default=2, help="worker processes")
    serve.add_argument("--threads", type=int, default=8,
                       help="threads per worker; more than RPL_FHIR_MAX_CALLS_PER_WORKER (6), so that calls "
                            "waiting on slow FHIR servers leave threads for the others and /healthz")
    serve.add_argument("--graceful-timeout", type=int, default=30, metavar="SECONDS",
                       help="on SIGTERM, how long the calls in progress may take to finish before the workers are "
                            "stopped (keep it below Kubernetes' terminationGracePeriodSeconds minus the preStop pause)")

    jwt_epilog = (
        "With authentication on (RPL_AUTH_ENABLED=true, the default) the service needs a signed JWT: "
        "`rpl-cds tester-key` makes a key and prints the RPL_AUTH_ISSUERS that trusts it; give the key with "
        "--jwt-key. The JWT's aud is the URL called, so the service's RPL_PUBLIC_BASE_URL must be the URL "
        "given here (or unset)."
    )
    demo = command("demo", "send the example requests to a running service and print the cards", jwt_epilog)
    demo.add_argument("--url", default=DEFAULT_SERVICE_URL, help="base URL of the running service")
    demo.add_argument("--language", default="en", choices=("en", "nl"), help="card language asked for")
    demo.add_argument("--jwt-key", metavar="PEM", type=Path,
                      help="private key to sign the JWT the service requires (see tester-key); none: send no JWT")
    demo.add_argument("--jwt-iss", metavar="ISS", default="rpl-cds-tester", help="iss of that JWT")
    demo.add_argument("--no-color", action="store_true", help="no colours, even on a terminal")

    sample = command(
        "example",
        "print an example request of a hook as JSON, its dates moved to today (for curl --data @-)",
    )
    sample.add_argument("hook", choices=EXAMPLES, help="the hook whose example request to print")
    sample.add_argument("--today", type=_iso_date, help="the day the dates are moved to (YYYY-MM-DD); default: today")

    load = command(
        "load-demo",
        "upload the synthetic demo patients to a FHIR server (transaction Bundles of PUTs: safe to repeat)",
    )
    target = load.add_mutually_exclusive_group(required=True)
    target.add_argument("--fhir-server", metavar="URL", help="FHIR R4 base URL, e.g. http://hapi.fhir.org/baseR4")
    target.add_argument("--output", metavar="DIR", type=Path, help="write the bundles as JSON files instead of uploading")
    load.add_argument("--token", help="bearer token for the FHIR server")
    load.add_argument("--patient", action="append", metavar="ID",
                      help="only this demo patient (repeatable); default: all")
    load.add_argument("--today", type=_iso_date, help="date the data is built around (YYYY-MM-DD); default: today")

    call = command(
        "call",
        "act like the CDS Hooks sandbox: discovery, prefetch from the FHIR server, one hook call, print the cards",
        jwt_epilog,
    )
    call.add_argument("hook", help="patient-view, order-select or order-sign (or a service id)")
    call.add_argument("--fhir-server", metavar="URL", required=True, help="FHIR R4 base URL holding the patient")
    call.add_argument("--patient", metavar="ID", required=True, help="Patient id on that server")
    call.add_argument("--draft", metavar="FILE", type=Path,
                      help="draft orders for order-select/order-sign: a JSON Bundle or one resource; every draft is "
                           "selected and gets the patient as subject (default: the demo drafts, progesterone and IVIg)")
    call.add_argument("--service", metavar="URL", default=DEFAULT_SERVICE_URL, help="base URL of the CDS service")
    call.add_argument("--no-prefetch", action="store_true", help="send no prefetch: the service fetches the data itself")
    call.add_argument("--token", help="bearer token for the FHIR server (also sent to the service as fhirAuthorization)")
    call.add_argument("--jwt-key", metavar="PEM", type=Path,
                      help="private key to sign the JWT the service requires (see tester-key); none: send no JWT")
    call.add_argument("--jwt-iss", metavar="ISS", default="rpl-cds-tester", help="iss of that JWT")
    call.add_argument("--user", default="Practitioner/rpl-cds-tester", help="context.userId")
    call.add_argument("--language", default="en", choices=("en", "nl"), help="card language asked for")
    call.add_argument("--json", action="store_true", help="print the request and the raw response as JSON")
    call.add_argument("--no-color", action="store_true", help="no colours, even on a terminal")

    key = command(
        "tester-key",
        "make (or reuse) a private key for `call --jwt-key` and print the RPL_AUTH_ISSUERS that trusts it",
        "For development and testing only: never trust a tester key in production.",
    )
    key.add_argument("--out", metavar="PEM", type=Path, default=default_tester_key(),
                     help="where the private key is kept (outside the working tree: $XDG_CONFIG_HOME/rpl-cds, "
                          "else ~/.config/rpl-cds)")
    key.add_argument("--iss", metavar="ISS", default="rpl-cds-tester", help="iss the key signs as")

    report = command(
        "report",
        "governance report from the feedback database: per recommendation and week, cards shown, silent, "
        "accepted, overridden (by reason), without feedback",
    )
    report.add_argument("--since", type=_iso_date, required=True, help="first day (YYYY-MM-DD, UTC) of cards counted")
    report.add_argument("--until", type=_iso_date, help="day after the last one counted (default: now)")
    report.add_argument("--format", choices=("markdown", "csv", "html"), default="markdown", help="output format")
    report.add_argument("--output", metavar="FILE", type=Path, help="write to this file instead of standard output")
    report.add_argument("--database-url", metavar="URL",
                        help="SQLAlchemy URL of the feedback database (default: RPL_DATABASE_URL or the service's default)")

    purge = command("purge", "delete issued-card and feedback rows older than N days (retention)")
    purge.add_argument("--older-than-days", type=int, metavar="N",
                       help="default: RPL_RETENTION_DAYS (required when that is unset or 0)")
    purge.add_argument("--database-url", metavar="URL", help="as for report")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "demo":
        return _demo(args)
    if args.command == "example":
        return _example(args)
    if args.command == "load-demo":
        return _load_demo(args)
    if args.command == "call":
        return _call(args)
    if args.command == "tester-key":
        return _tester_key(args)
    if args.command == "report":
        return _report(args)
    if args.command == "purge":
        return _purge(args)
    return 2


def _iso_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date YYYY-MM-DD") from None


def _database_url(args: argparse.Namespace) -> str:
    import os

    from .config import Settings

    return args.database_url or os.environ.get("RPL_DATABASE_URL") or Settings.model_fields["database_url"].default


def _report(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    import sqlalchemy as sa

    from .feedback import FeedbackStore
    from .report import build_report, render

    def start_of(day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)

    if args.until and args.until <= args.since:
        print("--until must be after --since", file=sys.stderr)
        return 2
    store = FeedbackStore(_database_url(args))  # a new database gets its (empty) tables: an empty report
    try:
        report = build_report(store.engine, start_of(args.since), start_of(args.until) if args.until else None)
    except sa.exc.SQLAlchemyError as exc:
        print(f"cannot read the feedback database: {type(exc).__name__}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    finally:
        store.close()
    text = render(report, args.format)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _purge(args: argparse.Namespace) -> int:
    import os

    import sqlalchemy as sa

    from .feedback import FeedbackStore

    days = args.older_than_days if args.older_than_days is not None else int(os.environ.get("RPL_RETENTION_DAYS") or 0)
    if days <= 0:
        print("give --older-than-days N (N >= 1) or set RPL_RETENTION_DAYS", file=sys.stderr)
        return 2
    store = FeedbackStore(_database_url(args))
    try:
        deleted = store.purge(days)
    except sa.exc.SQLAlchemyError as exc:
        print(f"cannot purge the feedback database: {type(exc).__name__}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(json.dumps({"older_than_days": days, "deleted": deleted}))
    return 0


def _metrics_per_instance() -> None:
    """/metrics adds up every gunicorn worker: prometheus_client's multiprocess mode, in a folder of
    this instance (PROMETHEUS_MULTIPROC_DIR, or a new temporary one), emptied before the workers start."""
    import os
    import tempfile

    from prometheus_client import values

    from .metrics import MULTIPROC_ENV, prepare_multiprocess_dir

    folder = os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(prefix="rpl-cds-metrics-")
    prepare_multiprocess_dir(folder)
    os.environ[MULTIPROC_ENV] = folder
    # prometheus_client picks its value class when first imported; the workers' metrics are made after this.
    values.ValueClass = values.get_value_class()


def _serve(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    from . import create_app
    from .config import ConfigError, load_settings
    from .metrics import worker_exit
    from .replay import in_memory_database
    # The app's modules are imported here, in gunicorn's master, before it forks the workers
    # (create_app imports them lazily, for a fast --help): a worker then answers at once
    # instead of importing for most of a second, and the workers share that memory.
    from . import api, feedback, fhir_client, registry  # noqa: F401

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.threads <= max(settings.fhir_max_calls_per_server, settings.fhir_max_calls_per_worker):
        print(f"WARNING: --threads {args.threads} is not above RPL_FHIR_MAX_CALLS_PER_WORKER "
              f"({settings.fhir_max_calls_per_worker}) and RPL_FHIR_MAX_CALLS_PER_SERVER "
              f"({settings.fhir_max_calls_per_server}): calls waiting on slow FHIR servers can hold every "
              "thread of a worker, and /healthz and other calls wait.", file=sys.stderr)
    if settings.auth_enabled and not settings.replay_cache_url and args.workers > 1 and in_memory_database(settings.database_url):
        print(f"WARNING: {args.workers} workers keep separate JWT replay memories with an in-memory database: a "
              "replayed token can pass on another worker. Use a database file, RPL_REPLAY_CACHE_URL=redis://... "
              "or --workers 1.", file=sys.stderr)

    _metrics_per_instance()

    class Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("threads", args.threads)
            self.cfg.set("worker_class", "gthread")
            # At most one connection per thread, so no idle keep-alive connections are kept:
            # gthread serves a kept-alive connection on the worker that accepted it, and the
            # benchmark showed one worker holding all of a client's connections while the other
            # core idled (half the throughput). Closing after each answer lets every request
            # go to a free worker (issue #7: p99 at concurrency 8 from ~160 to ~85 ms).
            self.cfg.set("worker_connections", args.threads)
            self.cfg.set("timeout", 30)
            self.cfg.set("graceful_timeout", args.graceful_timeout)
            self.cfg.set("accesslog", None)  # the service writes its own JSON audit line per call
            self.cfg.set("errorlog", "-")
            self.cfg.set("child_exit", lambda _server, worker: worker_exit(worker.pid))
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25.1
                # Its default path (~/.gunicorn/gunicorn.ctl) is shared by every instance a user
                # runs: a second instance took it over, and anyone with the user's rights could
                # change the workers of the first; under a read-only root filesystem (Kubernetes)
                # it cannot be made at all. The service is managed by signals and its platform,
                # not by gunicornc.
                self.cfg.set("control_socket_disable", True)

        def load(self):
            app = create_app(settings)
            tune_gc()
            return app

    Server().run()
    return 0


def tune_gc() -> None:
    """Fewer garbage collections while serving: parsing one hook call allocates tens of
    thousands of objects, nearly all freed by reference counting, so the default gen-0
    threshold (700) runs the cyclic collector dozens of times per call; and the app's
    long-lived objects (value sets, models, catalogues) are moved out of its way."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


# The day the example requests' dates are written for: a loss on 2026-09-02 is "less than three
# months ago", within the counselling window. ``example(hook, today)`` moves every date by as many
# days, so that the examples say the same whenever they are sent.
EXAMPLES_WRITTEN_FOR = date(2026, 11, 23)
_DATE_PREFIX = re.compile(r"^(\d{4}-\d{2}-\d{2})(?=$|T)")


def example(hook: str, today: date | None = None) -> dict[str, Any]:
    """One of the example requests shipped with the package; with ``today``, its dates moved so that
    they stand to ``today`` as they stand to EXAMPLES_WRITTEN_FOR."""
    from importlib import resources

    text = resources.files("service").joinpath("examples", f"{hook}.json").read_text(encoding="utf-8")
    body = json.loads(text)
    if today is None or today == EXAMPLES_WRITTEN_FOR:
        return body
    return _moved(body, today - EXAMPLES_WRITTEN_FOR)


def _moved(value: Any, by: timedelta) -> Any:
    if isinstance(value, dict):
        return {key: _moved(item, by) for key, item in value.items()}
    if isinstance(value, list):
        return [_moved(item, by) for item in value]
    if isinstance(value, str) and (found := _DATE_PREFIX.match(value)):
        return (date.fromisoformat(found.group(1)) + by).isoformat() + value[found.end():]
    return value


def _example(args: argparse.Namespace) -> int:
    print(json.dumps(example(args.hook, args.today or date.today()), indent=2, ensure_ascii=False))
    return 0


def _demo(args: argparse.Namespace) -> int:
    import requests

    from .sandbox_client import ClientError, JwtSigner, explain_401
    from .terminal import print_cards

    try:
        signer = JwtSigner.from_file(args.jwt_key, args.jwt_iss) if args.jwt_key else None
    except ClientError as exc:
        print(exc, file=sys.stderr)
        return 1
    status = 0
    with requests.Session() as session:
        for hook in EXAMPLES:
            body = example(hook, date.today())
            url = f"{args.url.rstrip('/')}/cds-services/rpl-{hook}"
            headers = {"Accept-Language": args.language, **(signer.headers(url) if signer else {})}
            try:
                response = session.post(url, json=body, headers=headers, timeout=(3.05, 30))
            except requests.RequestException as exc:
                print(f"cannot reach {url}: {exc}", file=sys.stderr)
                return 1
            print(f"\n=== {hook}  (POST {url} -> HTTP {response.status_code})")
            if response.status_code == 401:
                print(explain_401(url, signer), file=sys.stderr)
                return 1
            if response.status_code != 200:
                print(response.text)
                status = 1
                continue
            print_cards(response.json(), color=not args.no_color and sys.stdout.isatty())
    return status


def _load_demo(args: argparse.Namespace) -> int:
    from .demo_data import PATIENTS
    from .sandbox_client import ClientError, load_demo, new_session, write_demo

    known = [p.id for p in PATIENTS]
    unknown = [pid for pid in args.patient or () if pid not in known]
    if unknown:
        print(f"rpl-cds load-demo: no demo patient {', '.join(unknown)}; the demo patients are: {', '.join(known)}",
              file=sys.stderr)
        return 2
    today = args.today or date.today()
    if args.output is not None:
        for path in write_demo(args.output, today, args.patient):
            print(f"wrote {path}")
        return 0
    status = 0
    with new_session() as session:
        try:
            results = load_demo(session, args.fhir_server, token=args.token, today=today, patient_ids=args.patient)
        except ClientError as exc:
            print(exc, file=sys.stderr)
            return 1
    for result in results:
        if result.ok:
            print(f"loaded {result.patient_id:<36} {result.resources:>3} resources  (HTTP {result.status})")
        else:
            status = 1
            detail = result.message or "; ".join(result.failed)
            print(f"FAILED {result.patient_id:<36} HTTP {result.status}: {detail}", file=sys.stderr)
    if status == 0:
        print(f"\n{len(results)} demo patients on {args.fhir_server.rstrip('/')} (data dated around {today}). Try:")
        print(f"  rpl-cds call patient-view --fhir-server {args.fhir_server.rstrip('/')} --patient {results[0].patient_id}")
    return status


def _call(args: argparse.Namespace) -> int:
    from .sandbox_client import ORDER_HOOKS, ClientError, JwtSigner, call_hook, explain_401, new_session, read_drafts
    from .terminal import print_cards

    color = not args.no_color and sys.stdout.isatty()
    try:
        signer = JwtSigner.from_file(args.jwt_key, args.jwt_iss) if args.jwt_key else None
        drafts = read_drafts(args.draft)
        if args.draft is None and args.hook in ORDER_HOOKS:
            print("(draft orders: the demo drafts, progesterone and IVIg; use --draft FILE for your own)", file=sys.stderr)
        with new_session() as session:
            result = call_hook(
                session, args.service, args.hook, args.patient, args.fhir_server,
                token=args.token, drafts=drafts, use_prefetch=not args.no_prefetch, language=args.language,
                user_id=args.user, signer=signer,
            )
    except ClientError as exc:
        print(exc, file=sys.stderr)
        return 1
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        shown = dict(result.request)
        if "fhirAuthorization" in shown:
            shown["fhirAuthorization"] = {**shown["fhirAuthorization"], "access_token": "***"}
        print(json.dumps({"request": shown, "status": result.status, "response": result.response}, indent=2))
        return 0 if result.status == 200 else 1
    prefetched = "no prefetch" if args.no_prefetch else f"prefetch {len(result.request.get('prefetch', {}))} keys"
    print(f"=== {result.service['id']} for Patient/{args.patient} ({prefetched}) -> HTTP {result.status}")
    if result.status == 401:
        print(explain_401(result.url, signer), file=sys.stderr)
        return 1
    if result.status != 200:
        print(result.response if isinstance(result.response, str) else json.dumps(result.response, indent=2))
        return 1
    print_cards(result.response, color=color)
    return 0


def _tester_key(args: argparse.Namespace) -> int:
    from .sandbox_client import ClientError, JwtSigner, new_tester_key

    if not args.out.exists():
        try:
            args.out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            print(f"cannot write the key to {args.out}: {exc}", file=sys.stderr)
            return 1
        with os.fdopen(descriptor, "wb") as out:
            out.write(new_tester_key())
        print(f"wrote a new private key to {args.out} (keep it private; never commit it)", file=sys.stderr)
    else:
        print(f"using the private key in {args.out}", file=sys.stderr)
    try:
        signer = JwtSigner.from_file(args.out, args.iss)
    except ClientError as exc:
        print(exc, file=sys.stderr)
        return 1
    print("# Trust this key in the service (development and testing only), then call with "
          f"--jwt-key {args.out}:", file=sys.stderr)
    print(f"RPL_AUTH_ISSUERS='{json.dumps([signer.issuer()])}'")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
