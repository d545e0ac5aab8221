"""What happens to each card between the rules and the client: recorded, and shown or held back.

- Every card the rules produce is recorded (``issued_card``), so that feedback
  joins to recommendations and a committee can see how often each fired.
- Silent (pilot) mode: cards of configured catalogue IDs or hooks are recorded
  as ``silent`` and never returned.
- No repeat after an override (off by default): a card whose recommendation
  was overridden for the same patient within N days, on the same facts, is
  recorded as ``suppressed`` and not returned. The patient is kept only as an
  HMAC with a configured secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from cards.i18n import Translator
from cards.model import CardDraft, Indicator

from .config import Settings
from .feedback import SHOWN, SILENT, SUPPRESSED, FeedbackStore, IssuedCard, carried_ids
from .protocol import Card

log = logging.getLogger(__name__)


class Governance:
    def __init__(self, settings: Settings, store: FeedbackStore, facts_translator: Translator, metrics=None):
        self.store = store
        self.silent_ids = frozenset(settings.silent_recommendations)
        self.silent_hooks = frozenset(settings.silent_hooks)
        self.no_repeat_days = settings.no_repeat_after_override_days
        secret = settings.patient_hmac_secret.get_secret_value() if settings.patient_hmac_secret else ""
        self._secret = secret.encode() if self.no_repeat_days else b""
        self._facts_translator = facts_translator  # one language, so that the facts hash does not depend on it
        self.metrics = metrics

    def patient_hmac(self, fhir_server: str | None, patient_id: str) -> str | None:
        """The patient as a keyed hash: equal for the same patient, meaningless without the secret."""
        if not self._secret:
            return None
        subject = f"{(fhir_server or '').rstrip('/')}|{patient_id}".encode()
        return hmac.new(self._secret, subject, hashlib.sha256).hexdigest()

    def facts_hash(self, draft: CardDraft) -> str:
        """The facts a card is based on, as shown on the card: a change in any of them changes the hash."""
        facts = [self._facts_translator(fact) for fact in draft.facts]
        return hashlib.sha256(json.dumps([draft.rec_id, facts]).encode()).hexdigest()

    def is_silent(self, hook: str, draft: CardDraft) -> bool:
        # A card carrying a silent ID is held back whole: what it says about that ID must not reach a clinician yet.
        return hook in self.silent_hooks or any(rec in self.silent_ids for rec in carried_ids(draft))

    def issue(
        self,
        *,
        service_id: str,
        hook: str,
        drafts: Sequence[CardDraft],
        cards: Sequence[Card],
        fhir_server: str | None,
        patient_id: str,
        iss: str | None = None,
        tenant: str | None = None,
    ) -> list[Card]:
        """Records every card and returns the ones to show, in their order."""
        patient = self.patient_hmac(fhir_server, patient_id) if self.no_repeat_days else None
        overridden = self._recently_overridden(patient)
        shown: list[Card] = []
        records: list[IssuedCard] = []
        for draft, card in zip(drafts, cards, strict=True):
            facts_hash = self.facts_hash(draft) if patient else None
            if self.is_silent(hook, draft):
                disposition = SILENT
            elif (
                draft.indicator != Indicator.CRITICAL  # a critical card is shown every time
                and (draft.rec_id, facts_hash) in overridden
            ):
                disposition = SUPPRESSED
            else:
                disposition = SHOWN
                shown.append(card)
            records.append(
                IssuedCard(
                    card_uuid=card.uuid,
                    service_id=service_id,
                    hook=hook,
                    topic=draft.rec_id,
                    carried_ids=carried_ids(draft),
                    indicator=draft.indicator.value,
                    disposition=disposition,
                    suggestion_uuids=tuple(s.uuid for s in card.suggestions or ()),
                    iss=iss,
                    tenant=tenant,
                    patient_hmac=patient,
                    facts_hash=facts_hash,
                )
            )
            if self.metrics is not None:
                self.metrics.card(draft.rec_id, draft.indicator.value, disposition)
        try:
            self.store.record_issued(records)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the cards still go out
            # Decision support must not stop when the governance record cannot be written.
            log.error("issued cards not recorded: %s", type(exc).__name__)
            if self.metrics is not None:
                self.metrics.record_failed()
        return shown

    def _recently_overridden(self, patient: str | None) -> set[tuple[str, str]]:
        if not patient:
            return set()
        since = datetime.now(timezone.utc) - timedelta(days=self.no_repeat_days)
        try:
            return self.store.recently_overridden(patient, since)
        except sa.exc.SQLAlchemyError as exc:
            log.error("overrides not read; every card is shown: %s", type(exc).__name__)
            return set()
