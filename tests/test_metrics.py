"""/metrics: Prometheus text, read back with prometheus_client's own parser."""

from __future__ import annotations

from datetime import date

import os
import re
from pathlib import Path

import pytest
import requests
import responses
import yaml
from prometheus_client.parser import text_string_to_metric_families

from service.cli import example
from tests.builders import hook_request, losses, progesterone_order
from tests.conftest import FHIR_BASE
from tests.serve import rpl_cds_serve

ROOT = Path(__file__).parent.parent


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(scraped, name, **labels) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_calls_cards_feedback_and_errors(client):
    body = hook_request("order-select", losses(2), drafts=(progesterone_order(rid="p1"),))
    card = client.post("/cds-services/rpl-order-select", json=body).get_json()["cards"][0]
    client.post("/cds-services/rpl-order-select", json={"hook": "order-select"})  # 400
    client.post("/cds-services/rpl-order-select/feedback", json={"feedback": [
        {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-23T10:00:00Z"}]})
    client.post("/cds-services/rpl-order-select/feedback", json={"feedback": [
        {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-23T10:00:00Z"}]})
    client.post("/cds-services/made-up-service-id", json={})
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    scraped = samples(response.get_data(as_text=True))
    assert value(scraped, "rpl_cds_http_requests_total", endpoint="call_service", service="rpl-order-select", status="200") == 1
    assert value(scraped, "rpl_cds_http_requests_total", endpoint="call_service", service="rpl-order-select", status="400") == 1
    # An id made up in the URL is not a label of its own.
    assert value(scraped, "rpl_cds_http_requests_total", endpoint="call_service", service="unknown", status="404") == 1
    assert value(scraped, "rpl_cds_http_request_duration_seconds_count", endpoint="call_service", service="rpl-order-select") == 2
    assert value(scraped, "rpl_cds_cards_total", recommendation="E8.6a", indicator="warning", disposition="shown") == 1
    assert value(scraped, "rpl_cds_feedback_items_total", outcome="overridden") == 2
    assert value(scraped, "rpl_cds_feedback_duplicates_total") == 1


def test_metrics_need_no_ehr_jwt_and_count_401s(tmp_path):
    from tests.test_auth import auth_settings, close, new_app

    app = new_app(auth_settings(tmp_path))
    try:
        client = app.test_client()
        assert client.post("/cds-services/rpl-patient-view", json={}).status_code == 401
        response = client.get("/metrics")
        assert response.status_code == 200
        scraped = samples(response.get_data(as_text=True))
        assert value(scraped, "rpl_cds_http_requests_total", endpoint="call_service", service="rpl-patient-view", status="401") == 1
    finally:
        close(app)


@responses.activate
def test_fhir_reads_are_counted_and_timed(client):
    body = hook_request("patient-view", losses(2))
    body.pop("prefetch")
    body["fhirServer"] = FHIR_BASE
    responses.add(responses.GET, f"{FHIR_BASE}/Patient/pat-1", json={"resourceType": "Patient", "id": "pat-1"})
    responses.add(responses.GET, re.compile(rf"{re.escape(FHIR_BASE)}/\w+\?.*"),
                  json={"resourceType": "Bundle", "type": "searchset", "entry": []})
    assert client.post("/cds-services/rpl-patient-view", json=body).status_code == 200
    scraped = samples(client.get("/metrics").get_data(as_text=True))
    assert value(scraped, "rpl_cds_fhir_reads_total", kind="read", outcome="ok") == 1
    assert value(scraped, "rpl_cds_fhir_reads_total", kind="search", outcome="ok") >= 1
    assert value(scraped, "rpl_cds_fhir_read_duration_seconds_count", kind="read") == 1


def test_metrics_add_up_every_gunicorn_worker(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPL_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env["RPL_DATABASE_URL"] = f"sqlite:///{tmp_path / 'feedback.sqlite3'}"
    env["RPL_AUTH_ENABLED"] = "false"
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale file of an earlier start")
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    with rpl_cds_serve(env, tmp_path, workers=2) as (url, _stdout, stderr):
        calls = 12  # with closed connections, calls spread over both workers
        for _ in range(calls):
            r = requests.post(f"{url}/cds-services/rpl-patient-view", json=example("patient-view", date.today()), timeout=30,
                              headers={"Connection": "close"})
            assert r.status_code == 200
        scraped = samples(requests.get(f"{url}/metrics", timeout=10).text)
        assert not (metrics_dir / "counter_999999.db").exists()  # emptied at start
        assert len(list(metrics_dir.glob("counter_*.db"))) >= 2  # each worker writes its own file
        assert value(scraped, "rpl_cds_http_requests_total", endpoint="call_service", service="rpl-patient-view",
                     status="200") == calls, stderr.read_text()


def test_the_alert_rules_use_metrics_the_service_exports(client):
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "rpl-cds-alerts.yml").read_text())
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    assert {"RplCdsRecommendationStoppedFiring", "RplCdsRecommendationFiringJumped"} <= set(alerts)
    exported = {family.name for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))}
    for rule in alerts.values():
        assert rule["labels"]["severity"] and rule["annotations"]["summary"]
        used = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in re.findall(r"rpl_cds_[a-z_]+", rule["expr"])}
        assert used and used <= exported, rule["expr"]


@pytest.mark.parametrize("path", ["/metrics"])
def test_metrics_hold_no_patient_data(client, path):
    body = hook_request("patient-view", losses(2), pid="patient-4711")
    client.post("/cds-services/rpl-patient-view", json=body)
    assert "4711" not in client.get(path).get_data(as_text=True)


def test_412_and_5xx_are_counted(client, monkeypatch):
    body = hook_request("patient-view", losses(2))
    body.pop("prefetch")  # no prefetch and no fhirServer: the data cannot be had
    assert client.post("/cds-services/rpl-patient-view", json=body).status_code == 412

    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("service.api.evaluate", broken)
    assert client.post("/cds-services/rpl-patient-view", json=hook_request("patient-view", losses(2))).status_code == 500
    scraped = samples(client.get("/metrics").get_data(as_text=True))
    assert value(scraped, "rpl_cds_http_requests_total", endpoint="call_service", service="rpl-patient-view", status="412") == 1
    assert value(scraped, "rpl_cds_http_requests_total", endpoint="call_service", service="rpl-patient-view", status="500") == 1
