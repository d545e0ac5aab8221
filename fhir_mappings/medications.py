"""Medications recognised by ingredient, whatever the level of the code a client sends.

EHRs, the CDS Hooks sandbox and Synthea code a prescription as an RxNorm *product*
(e.g. 312641 "progesterone 200 MG Oral Capsule"), European systems as ATC or a local
product code. The value sets hold the ingredient, ATC and the verified product codes;
for a code they do not hold, the coding's ``display`` or the concept's ``text`` is read
for a catalogue ingredient named as a whole word (``medication-names.json``). A card
then says that the order was recognised by its name, so the clinician knows why.

Strength: RxNorm names give it after the ingredient ("aspirin 81 MG Oral Tablet"); it
turns a dose in tablets ("{pill}", as the sandbox sends it) into mg per day, and keeps
products above a strength out of a set (aspirin 325 mg is not low-dose aspirin).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

NAMES_FILE = Path(__file__).parent / "medication-names.json"

_MASS_TO_MG = {"mg": 1.0, "g": 1000.0, "mcg": 0.001, "ug": 0.001, "µg": 0.001}
# After the ingredient: up to three words (salt, brand line: "sodium", "calcium", "cardio"),
# then a mass; not a concentration ("100 MG/ML": the mass per unit is then unknown).
_STRENGTH = re.compile(r"^(?:\s+[a-z][a-z-]*){0,3}?\s*(\d+(?:[.,]\d+)?)\s*(mg|mcg|ug|µg|g)\b(?!\s*/)")
_COMBINATION = re.compile(r"\s/\s|\bmulti-?vitamin|\bprenatal\b|\bmultivitamine\b")


@dataclass(frozen=True)
class IngredientName:
    ingredient: str  # the catalogue ingredient, e.g. "prednisone"
    valueset: str  # the value set the ingredient belongs to
    pattern: re.Pattern[str]
    exclude: re.Pattern[str] | None
    single_ingredient_only: bool
    max_unit_strength_mg: float | None


@dataclass(frozen=True)
class IngredientMatch:
    ingredient: str
    valueset: str
    strength_mg: float | None  # per unit (tablet, capsule), when the name gives it


def _words(words: Iterable[str]) -> re.Pattern[str]:
    # A whole word: no letter, digit or hyphen before it (17-hydroxyprogesterone), no letter
    # or digit after it. Longest names first, so "levothyroxine sodium" wins over "levothyroxine".
    alternatives = "|".join(re.escape(w.lower()) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?!\w)")


@lru_cache(maxsize=1)
def ingredient_names() -> tuple[IngredientName, ...]:
    data = json.loads(NAMES_FILE.read_text(encoding="utf-8"))
    return tuple(
        IngredientName(
            ingredient=row["ingredient"],
            valueset=row["valueset"],
            pattern=_words(row["names"]),
            exclude=_words(row["exclude"]) if row.get("exclude") else None,
            single_ingredient_only=bool(row.get("single_ingredient_only")),
            max_unit_strength_mg=row.get("max_unit_strength_mg"),
        )
        for row in data["ingredients"]
    )


def strength_after(text: str, end: int) -> float | None:
    """The mass per unit given right after a name ending at ``end`` of lower-case text, in mg."""
    found = _STRENGTH.match(text[end:])
    if not found:
        return None
    return float(found.group(1).replace(",", ".")) * _MASS_TO_MG[found.group(2)]


def ingredients_named(texts: Iterable[str | None]) -> tuple[IngredientMatch, ...]:
    """The catalogue ingredients the names in ``texts`` (displays, text) name as a whole word.

    Respects each ingredient's exclusions and strength limit: a product that is not in
    the set by its name is left out, never matched to another drug."""
    found: dict[tuple[str, str], IngredientMatch] = {}
    for raw in texts:
        if isinstance(raw, str) and raw:
            for match in _named(raw):
                key = (match.ingredient, match.valueset)
                if key not in found or found[key].strength_mg is None:
                    found[key] = match
    return tuple(found.values())


@lru_cache(maxsize=8192)  # a record names the same products again and again, call after call
def _named(raw: str) -> tuple[IngredientMatch, ...]:
    text = raw.lower()
    if not _ANY_NAME().search(text):  # most medications of a record: no catalogue drug at all
        return ()
    found = []
    for name in ingredient_names():
        hit = name.pattern.search(text)
        if hit is None:
            continue
        if name.exclude is not None and name.exclude.search(text):
            continue
        if name.single_ingredient_only and _COMBINATION.search(text):
            continue
        strength = strength_after(text, hit.end())
        if name.max_unit_strength_mg is not None and strength is not None and strength > name.max_unit_strength_mg:
            continue
        found.append(IngredientMatch(name.ingredient, name.valueset, strength))
    return tuple(found)


@lru_cache(maxsize=1)
def _ANY_NAME() -> re.Pattern[str]:  # noqa: N802 (a constant, built once on first use)
    """One pattern of every name: a single search rules out a drug the catalogue does not name."""
    data = json.loads(NAMES_FILE.read_text(encoding="utf-8"))
    return _words(n for row in data["ingredients"] for n in row["names"])
