"""The ``rpl-cds`` command: serve the service, and try it from a terminal."""

from __future__ import annotations

import argparse
import gc
import json
import sys
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

EXAMPLES = ("patient-view", "order-select", "order-sign")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rpl-cds", description="CDS Hooks service for recurrent pregnancy loss.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the service under gunicorn (production WSGI server)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=2)
    serve.add_argument("--threads", type=int, default=8,
                       help="threads per worker; more than RPL_FHIR_MAX_CALLS_PER_WORKER (6), so that calls "
                            "waiting on slow FHIR servers leave threads for the others and /healthz")

    demo = commands.add_parser("demo", help="send the example requests to a running service and print the cards")
    demo.add_argument("--url", default="http://127.0.0.1:8080", help="base URL of the running service")
    demo.add_argument("--language", default="en", choices=("en", "nl"))
    demo.add_argument("--no-color", action="store_true")

    load = commands.add_parser(
        "load-demo",
        help="upload the synthetic demo patients to a FHIR server (transaction Bundles of PUTs: safe to repeat)",
    )
    target = load.add_mutually_exclusive_group(required=True)
    target.add_argument("--fhir-server", metavar="URL", help="FHIR R4 base URL, e.g. http://hapi.fhir.org/baseR4")
    target.add_argument("--output", metavar="DIR", type=Path, help="write the bundles as JSON files instead of uploading")
    load.add_argument("--token", help="bearer token for the FHIR server")
    load.add_argument("--patient", action="append", choices=_demo_ids(), metavar="ID",
                      help="only this demo patient (repeatable); default: all")
    load.add_argument("--today", type=_iso_date, help="date the data is built around (YYYY-MM-DD); default: today")

    call = commands.add_parser(
        "call",
        help="act like the CDS Hooks sandbox: discovery, prefetch from the FHIR server, one hook call, print the cards",
    )
    call.add_argument("hook", help="patient-view, order-select or order-sign (or a service id)")
    call.add_argument("--fhir-server", metavar="URL", required=True, help="FHIR R4 base URL holding the patient")
    call.add_argument("--patient", metavar="ID", required=True, help="Patient id on that server")
    call.add_argument("--draft", metavar="FILE", type=Path,
                      help="draft orders for order-select/order-sign: a JSON Bundle or one resource; every draft is "
                           "selected and gets the patient as subject (default: the demo drafts, progesterone and IVIg)")
    call.add_argument("--service", metavar="URL", default="http://127.0.0.1:8080", help="base URL of the CDS service")
    call.add_argument("--no-prefetch", action="store_true", help="send no prefetch: the service fetches the data itself")
    call.add_argument("--token", help="bearer token for the FHIR server (also sent to the service as fhirAuthorization)")
    call.add_argument("--jwt-key", metavar="PEM", type=Path,
                      help="private key to sign the JWT the service requires (see tester-key); none: send no JWT")
    call.add_argument("--jwt-iss", metavar="ISS", default="rpl-cds-tester", help="iss of that JWT")
    call.add_argument("--user", default="Practitioner/rpl-cds-tester", help="context.userId")
    call.add_argument("--language", default="en", choices=("en", "nl"))
    call.add_argument("--json", action="store_true", help="print the request and the raw response as JSON")
    call.add_argument("--no-color", action="store_true")

    key = commands.add_parser(
        "tester-key",
        help="make (or reuse) a private key for `call --jwt-key` and print the RPL_AUTH_ISSUERS that trusts it",
    )
    key.add_argument("--out", metavar="PEM", type=Path, default=Path("rpl-cds-tester-key.pem"),
                     help="where the private key is kept (default: ./rpl-cds-tester-key.pem)")
    key.add_argument("--iss", metavar="ISS", default="rpl-cds-tester", help="iss the key signs as")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "demo":
        return _demo(args)
    if args.command == "load-demo":
        return _load_demo(args)
    if args.command == "call":
        return _call(args)
    if args.command == "tester-key":
        return _tester_key(args)
    return 2


def _demo_ids() -> list[str]:
    from .demo_data import PATIENTS

    return [p.id for p in PATIENTS]


def _iso_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date YYYY-MM-DD") from None


def _serve(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    from . import create_app
    from .config import ConfigError, load_settings
    from .replay import in_memory_database

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
            self.cfg.set("accesslog", None)  # the service writes its own JSON audit line per call
            self.cfg.set("errorlog", "-")
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25.1
                # Its default path (~/.gunicorn/gunicorn.ctl) is shared by every instance a user
                # runs: a second instance took it over, and anyone with the user's rights could
                # change the workers of the first. The service is managed by signals and its
                # platform, not by gunicornc.
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


def example(hook: str) -> dict[str, Any]:
    """One of the example requests shipped with the package."""
    text = resources.files("service").joinpath("examples", f"{hook}.json").read_text(encoding="utf-8")
    return json.loads(text)


def _demo(args: argparse.Namespace) -> int:
    import requests

    from .terminal import print_cards

    status = 0
    with requests.Session() as session:
        for hook in EXAMPLES:
            body = example(hook)
            url = f"{args.url.rstrip('/')}/cds-services/rpl-{hook}"
            try:
                response = session.post(
                    url, json=body, headers={"Accept-Language": args.language}, timeout=(3.05, 30)
                )
            except requests.RequestException as exc:
                print(f"cannot reach {url}: {exc}", file=sys.stderr)
                return 1
            print(f"\n=== {hook}  (POST {url} -> HTTP {response.status_code})")
            if response.status_code != 200:
                print(response.text)
                status = 1
                continue
            print_cards(response.json(), color=not args.no_color and sys.stdout.isatty())
    return status


def _load_demo(args: argparse.Namespace) -> int:
    from .sandbox_client import ClientError, load_demo, new_session, write_demo

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
    from .sandbox_client import ORDER_HOOKS, ClientError, JwtSigner, call_hook, new_session, read_drafts
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
    if result.status != 200:
        print(result.response if isinstance(result.response, str) else json.dumps(result.response, indent=2))
        return 1
    print_cards(result.response, color=color)
    return 0


def _tester_key(args: argparse.Namespace) -> int:
    import os

    from .sandbox_client import ClientError, JwtSigner, new_tester_key

    if not args.out.exists():
        descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(new_tester_key())
        print(f"wrote a new private key to {args.out} (keep it private)", file=sys.stderr)
    try:
        signer = JwtSigner.from_file(args.out, args.iss)
    except ClientError as exc:
        print(exc, file=sys.stderr)
        return 1
    print("# Trust this key in the service (development and testing only), then call with --jwt-key:", file=sys.stderr)
    print(f"RPL_AUTH_ISSUERS='{json.dumps([signer.issuer()])}'")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
