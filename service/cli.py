"""The ``rpl-cds`` command: serve the service, and try it from a terminal."""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from typing import Any

EXAMPLES = ("patient-view", "order-select", "order-sign")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rpl-cds", description="CDS Hooks service for recurrent pregnancy loss.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the service under gunicorn (production WSGI server)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=2)
    serve.add_argument("--threads", type=int, default=4, help="threads per worker")

    demo = commands.add_parser("demo", help="send the example requests to a running service and print the cards")
    demo.add_argument("--url", default="http://127.0.0.1:8080", help="base URL of the running service")
    demo.add_argument("--language", default="en", choices=("en", "nl"))
    demo.add_argument("--no-color", action="store_true")

    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "demo":
        return _demo(args)
    return 2


def _serve(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    from . import create_app
    from .config import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2

    class Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("threads", args.threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("timeout", 30)
            self.cfg.set("accesslog", None)  # the service writes its own JSON audit line per call
            self.cfg.set("errorlog", "-")

        def load(self):
            return create_app(settings)

    Server().run()
    return 0


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


if __name__ == "__main__":
    raise SystemExit(main())
