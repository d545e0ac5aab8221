"""The null service: the same stack as rpl-cds (gunicorn gthread + Flask), no CDS work.

It reads and parses the request JSON, as the service must, and answers
{"cards": []}. Benchmarked side by side with the real service, it gives the floor
of this machine at that moment (HTTP, WSGI, Flask, JSON parsing of the same
body), so the service's results are read as ratios that hold on a noisy machine.
Flask, not a bare WSGI callable, so the ratio measures the service's own work
(validation, data, facts, rules, cards) and not the framework it shares.

The floor must not be slower than the service could ever be: the body is parsed
with orjson as service.protocol.load_json parses it, and the garbage collector is
set as `rpl-cds serve` sets it in its workers (service.cli.tune_gc). With the
standard library's parser and the default collector, the null service took about
1.4 x the time per call and had gen-2 collections in its tail (p99 at concurrency
1 of 40-55 ms against a p50 of 9 ms), which flattered the service's ratios.
"""

from __future__ import annotations

import gc

import orjson
from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/cds-services/<service_id>")
def call_service(service_id: str):
    body = orjson.loads(request.get_data(cache=False))
    if not isinstance(body, dict):
        return jsonify({"error": "not an object"}), 400
    return jsonify({"cards": []})


@app.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


# As service.cli.tune_gc, after the app's objects exist (gunicorn imports this module in each worker).
gc.freeze()
gc.set_threshold(50_000, 20, 100)
