"""The null service: the same stack as rpl-cds (gunicorn gthread + Flask), no CDS work.

It reads and parses the request JSON, as the service must, and answers
{"cards": []}. Benchmarked side by side with the real service, it gives the floor
of this machine at that moment (HTTP, WSGI, Flask, JSON parsing of the same
body), so the service's results are read as ratios that hold on a noisy machine.
Flask, not a bare WSGI callable, so the ratio measures the service's own work
(validation, data, facts, rules, cards) and not the framework it shares.
"""

from __future__ import annotations

import json

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/cds-services/<service_id>")
def call_service(service_id: str):
    body = json.loads(request.get_data(cache=False))
    if not isinstance(body, dict):
        return jsonify({"error": "not an object"}), 400
    return jsonify({"cards": []})


@app.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})
