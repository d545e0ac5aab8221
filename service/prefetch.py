"""Prefetch: use what the EHR sent, fetch what is missing, or answer 412.

Per key (CDS Hooks 2.0, "Providing FHIR Resources"):
- present with a resource or Bundle: used as is (a Bundle with a 'next' link
  is completed from the FHIR server);
- present with null: the EHR has no data for it;
- absent, or an OperationOutcome (the EHR could not get it): fetched from
  fhirServer, all missing keys at once in parallel; if that is impossible,
  the call fails with 412 Precondition Failed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from .fhir_client import FhirClient, FhirClients, FhirError
from .registry import PATIENT_TOKEN, PrefetchQuery


log = logging.getLogger(__name__)

# What a caller learns when fetching failed, whatever the reason: which host refused, timed out,
# answered 404 or sent no JSON stays in the log, or the 412 would map the hospital network for
# anyone who can make the service request a URL (issue #13).
DATA_NOT_AVAILABLE = "data not available: the prefetch is incomplete and the service could not fetch the rest"


class PrefetchUnavailable(Exception):
    """Needed data is neither in prefetch nor obtainable: HTTP 412."""


@dataclass(frozen=True)
class FetchPlan:
    key: str
    url: str
    is_read: bool
    complete_bundle: Mapping[str, Any] | None = None  # a paginated prefetch Bundle to complete


def render(template: str, patient_id: str) -> str:
    return template.replace(PATIENT_TOKEN, patient_id)


def _needs_fetch(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("resourceType") == "OperationOutcome"


def _next_url(bundle: Mapping[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, Mapping) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None


def plan(queries: tuple[PrefetchQuery, ...], prefetch: Mapping[str, Any] | None, patient_id: str) -> tuple[dict[str, Any], list[FetchPlan]]:
    """Split the service's prefetch keys into data at hand and fetches to make."""
    given = prefetch or {}
    at_hand: dict[str, Any] = {}
    fetches: list[FetchPlan] = []
    for query in queries:
        url = render(query.template, patient_id)
        if query.key in given and not _needs_fetch(given[query.key]):
            value = given[query.key]
            if isinstance(value, Mapping) and value.get("resourceType") == "Bundle" and _next_url(value):
                fetches.append(FetchPlan(query.key, _next_url(value), False, value))
            else:
                at_hand[query.key] = value
        else:
            fetches.append(FetchPlan(query.key, url, query.is_read))
    return at_hand, fetches


def _fetch_one(client: FhirClient, item: FetchPlan, token: str | None) -> Any:
    if item.is_read:
        return client.read(item.url, token)
    rest = client.search(item.url, token)
    if item.complete_bundle is not None:
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [*(item.complete_bundle.get("entry") or []), *rest["entry"]],
        }
    return rest


def resolve(
    queries: tuple[PrefetchQuery, ...],
    prefetch: Mapping[str, Any] | None,
    patient_id: str,
    fhir_server: str | None,
    token: str | None,
    clients: FhirClients,
    executor: Executor,
) -> dict[str, Any]:
    """Every prefetch key's data for this call, or PrefetchUnavailable."""
    at_hand, fetches = plan(queries, prefetch, patient_id)
    if not fetches:
        return at_hand
    keys = ", ".join(f.key for f in fetches)
    if not fhir_server:
        raise PrefetchUnavailable(f"prefetch is missing {keys} and the request has no fhirServer to fetch it from")
    try:
        client = clients.for_server(fhir_server)
    except FhirError as exc:
        _log_failure(keys, [str(exc)])
        raise PrefetchUnavailable(DATA_NOT_AVAILABLE) from None
    futures = {item.key: executor.submit(_fetch_one, client, item, token) for item in fetches}
    errors = []
    for key, future in futures.items():
        try:
            at_hand[key] = future.result()
        except FhirError as exc:
            errors.append(f"{key}: {exc}")
    if errors:
        _log_failure(keys, errors)
        raise PrefetchUnavailable(DATA_NOT_AVAILABLE)
    return at_hand


def _log_failure(keys: str, reasons: list[str]) -> None:
    """The reasons, for the operator: FhirError messages name no patient and hold no token."""
    log.warning("prefetch not fetched", extra={"audit": {"missing": keys, "reasons": reasons[:20]}})
