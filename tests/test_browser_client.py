"""A browser as the CDS client, as the CDS Hooks sandbox is one: a page of another origin calls
discovery and a hook with fetch() and an Authorization header. CORS (the preflight, the
headers a browser needs to read an answer, a 401 included) and the JWT are checked by a real
Chromium on every run, not by reading headers in a test client."""

from __future__ import annotations

import pytest

from tests.browser import serve_page, serve_wsgi  # the browser fixture: tests/conftest.py
from tests.builders import hook_request, losses, miscarriage
from tests.test_auth import auth_settings, close, new_app, token

PAGE = "<!doctype html><html><head><meta charset='utf-8'><title>EHR</title></head><body>EHR</body></html>"

CALL_LIKE_THE_SANDBOX = """
async ({base, discoveryToken, hookToken, body}) => {
  const out = {};
  const discovery = await fetch(base + "/cds-services", {
    headers: {Accept: "application/json", Authorization: "Bearer " + discoveryToken}});
  out.discoveryStatus = discovery.status;
  out.services = (await discovery.json()).services.map(s => s.id);
  const hook = await fetch(base + "/cds-services/rpl-patient-view", {
    method: "POST",
    headers: {"Content-Type": "application/json", Accept: "application/json", Authorization: "Bearer " + hookToken},
    body: JSON.stringify(body)});
  out.hookStatus = hook.status;
  out.cards = (await hook.json()).cards.map(c => ({topic: c.source.topic.code, detail: c.detail}));
  const refused = await fetch(base + "/cds-services", {headers: {Authorization: "Bearer not-a-jwt"}});
  out.refusedStatus = refused.status;
  out.refusedChallenge = refused.headers.get("WWW-Authenticate");
  return out;
}
"""


@pytest.fixture
def service(tmp_path, request):
    """The service with authentication on (the issuer's pinned key), served on a free port."""
    overrides = getattr(request, "param", {})
    app = new_app(auth_settings(tmp_path, **overrides))
    try:
        with serve_wsgi(app) as base:
            yield base
    finally:
        close(app)


def _tokens(base: str) -> dict:
    return {"discoveryToken": token("/cds-services", aud=f"{base}/cds-services"),
            "hookToken": token("/cds-services/rpl-patient-view", aud=f"{base}/cds-services/rpl-patient-view")}


def test_a_page_of_another_origin_calls_discovery_and_a_hook_with_a_jwt(browser, service):  # noqa: F811
    context = browser.new_context(locale="nl-NL")  # the card language follows the browser's Accept-Language
    try:
        page = context.new_page()
        with serve_page(PAGE) as page_url:
            assert page_url.split(":")[2] != service.split(":")[2]  # another port: another origin, CORS applies
            page.goto(page_url)
            body = hook_request("patient-view", losses(2), miscarriage("2026-09-01"))
            result = page.evaluate(CALL_LIKE_THE_SANDBOX, {"base": service, "body": body, **_tokens(service)})
    finally:
        context.close()
    assert result["discoveryStatus"] == 200
    assert {"rpl-patient-view", "rpl-order-select", "rpl-order-sign"} <= set(result["services"])
    assert result["hookStatus"] == 200
    cards = {c["topic"]: c for c in result["cards"]}
    # S1 on the counselling card C (merged, issue 16), in Dutch from the browser's language
    assert "C" in cards and "- S1 (" in cards["C"]["detail"] and "Op basis van" in cards["C"]["detail"]
    # a 401 is readable by the page (CORS headers on errors too), so a client can show it
    assert result["refusedStatus"] == 401 and result["refusedChallenge"] == "Bearer"


@pytest.mark.parametrize("service", [{"cors_origins": ("https://sandbox.cds-hooks.org",)}], indirect=True)
def test_a_page_of_an_origin_not_allowed_cannot_read_the_service(browser, service):  # noqa: F811
    page = browser.new_page()
    try:
        with serve_page(PAGE) as page_url:
            page.goto(page_url)
            outcome = page.evaluate(
                """async ({base, discoveryToken}) => {
                     try {
                       const r = await fetch(base + "/cds-services", {headers: {Authorization: "Bearer " + discoveryToken}});
                       return "read " + r.status;
                     } catch (e) { return "blocked: " + e.name; }
                   }""",
                {"base": service, **_tokens(service)},
            )
    finally:
        page.close()
    assert outcome == "blocked: TypeError"  # the browser refused it: CORS, not the service's answer


def test_rx_sign_from_the_browser_with_a_product_coded_progesterone_order(browser, service):  # noqa: F811
    """The sandbox's Rx Sign tab: a draft coded as an RxNorm product, reasonCode as one object."""
    from tests.test_real_clients import sandbox_order

    path = "/cds-services/rpl-order-sign"
    body = hook_request("order-sign", losses(2),
                        drafts=(sandbox_order("312641", "progesterone 200 MG Oral Capsule", treating=True),))
    page = browser.new_page()
    try:
        with serve_page(PAGE) as page_url:
            page.goto(page_url)
            topics = page.evaluate(
                """async ({url, jwt, body}) => {
                     const r = await fetch(url, {method: "POST", body: JSON.stringify(body),
                       headers: {"Content-Type": "application/json", Authorization: "Bearer " + jwt}});
                     return (await r.json()).cards.map(c => c.source.topic.code);
                   }""",
                {"url": service + path, "jwt": token(path, aud=service + path), "body": body},
            )
    finally:
        page.close()
    assert "E8.6a" in topics
