"""Settings of the facts extraction (from the service's configuration)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExtractionSettings:
    # aCL / anti-beta2GPI: positive above this when neither interpretation nor range is known.
    antibody_cutoff: float = 40.0
    # A loss counts as a miscarriage up to this gestational age (ESHRE 24 weeks; older Dutch 20).
    loss_week_limit: int = 24
