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
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Any

from .fhir_budget import CallBudget
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


def _fetch_one(client: FhirClient, item: FetchPlan, token: str | None, budget: CallBudget) -> Any:
    if item.is_read:
        return client.read(item.url, token, budget)
    rest = client.search(item.url, token, budget)
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
    budget: CallBudget | None = None,
) -> dict[str, Any]:
    """Every prefetch key's data for this call, or PrefetchUnavailable.

    The missing keys are fetched in parallel on the server's own threads, all within the
    call's budget: at its deadline the reads still running are cut and the call gets 412;
    the bytes read count until the caller releases the budget (the end of the HTTP request)."""
    at_hand, fetches = plan(queries, prefetch, patient_id)
    if not fetches:
        return at_hand
    keys = ", ".join(f.key for f in fetches)
    if not fhir_server:
        raise PrefetchUnavailable(f"prefetch is missing {keys} and the request has no fhirServer to fetch it from")
    budget = budget or clients.budget()
    errors: list[str] = []
    futures: dict[str, Future] = {}
    try:
        client = clients.for_server(fhir_server)
        with client.call_slot(budget):
            futures = {item.key: client.executor.submit(_fetch_one, client, item, token, budget) for item in fetches}
            wait(futures.values(), timeout=budget.left())
            if not all(future.done() for future in futures.values()):
                budget.expire()  # cuts the reads still running: their threads are free again at once
                errors.append(f"the call's deadline of {budget.seconds:g} s passed (RPL_FHIR_CALL_DEADLINE_SECONDS)")
            for key, future in futures.items():
                if future.cancel() or not future.done():
                    continue
                try:
                    at_hand[key] = future.result()
                except FhirError as exc:
                    errors.append(f"{key}: {exc}")
    except FhirError as exc:
        errors.append(str(exc))
    if errors:
        _log_failure(keys, errors)
        at_hand.clear()  # the answers that did come: not kept alive by the 412's traceback
        futures.clear()
        raise PrefetchUnavailable(DATA_NOT_AVAILABLE)
    return at_hand


def _log_failure(keys: str, reasons: list[str]) -> None:
    """The reasons, for the operator: FhirError messages name no patient and hold no token."""
    log.warning("prefetch not fetched", extra={"audit": {"missing": keys, "reasons": reasons[:20]}})
