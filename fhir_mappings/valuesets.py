"""Value sets as data: FHIR ValueSet resources loaded into a fast lookup index.

The service ships one ValueSet per clinical concept in ``valuesets/`` (named
after the tail of its canonical URL). A hospital adds its own codes (local lab
codes, local drug codes) by pointing ``RPL_EXTRA_VALUESETS_DIR`` at a folder of
further ValueSet resources: a ValueSet whose ``url`` matches a shipped one
extends it (union of codes); a new ``url`` adds a new set.

Supported content, enough for this catalogue and standard FHIR:
``compose.include[].concept``, ``expansion.contains`` and, for the hierarchical
classifications ICD-10, ICD-10-CM and ATC only, ``filter`` with ``op: is-a``,
read as "the code itself or any code that starts with it" (which is how those
classifications build child codes: O03 -> O03.9, B01AB -> B01AB05).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CANONICAL_BASE = "http://rpl-cds.org/fhir/ValueSet/"
SHIPPED_DIR = Path(__file__).parent / "valuesets"

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"

# Systems whose codes nest by prefix; is-a filters are honoured only here.
PREFIX_SYSTEMS = frozenset({ICD10, ICD10CM, ATC})


class ValueSetError(ValueError):
    """A ValueSet file that cannot be used; raised at start-up, never per call."""


@dataclass(frozen=True)
class Concept:
    system: str
    code: str
    display: str | None = None


def _normal_code(system: str, code: str) -> str:
    # ICD-10 codes appear as "O03.9" and as "O039"; compare without the dot.
    code = code.strip()
    if system in PREFIX_SYSTEMS:
        return code.replace(".", "").upper()
    return code


class ValueSetIndex:
    """Membership of codings in named value sets, as dictionary lookups.

    Value sets are referred to by name (the tail of the canonical URL, e.g.
    ``tsh``) or by full canonical URL.
    """

    def __init__(self, valuesets: Iterable[Mapping[str, Any]]):
        self._exact: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._prefixes: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self._first_concept: dict[str, Concept] = {}
        self._displays: dict[tuple[str, str], str] = {}  # the name of a listed code, e.g. an RxNorm product
        self._titles: dict[str, str] = {}
        self._cache: dict[tuple[str, str], frozenset[str]] = {}
        for resource in valuesets:
            self._add(resource)

    # -- loading -------------------------------------------------------------
    def _add(self, resource: Mapping[str, Any]) -> None:
        if resource.get("resourceType") != "ValueSet":
            raise ValueSetError("not a ValueSet resource")
        url = resource.get("url")
        if not isinstance(url, str) or not url:
            raise ValueSetError("ValueSet without url")
        name = url.rstrip("/").rsplit("/", 1)[-1]
        self._titles.setdefault(name, resource.get("title") or name)
        concepts: list[Concept] = []
        for include in (resource.get("compose") or {}).get("include") or []:
            system = include.get("system")
            if not system:
                raise ValueSetError(f"{name}: include without system")
            for concept in include.get("concept") or []:
                concepts.append(Concept(system, concept["code"], concept.get("display")))
            for flt in include.get("filter") or []:
                if flt.get("op") != "is-a" or system not in PREFIX_SYSTEMS:
                    raise ValueSetError(
                        f"{name}: only is-a filters on ICD-10, ICD-10-CM and ATC are supported"
                    )
                self._prefixes[system].append((_normal_code(system, flt["value"]), name))
        for contained in (resource.get("expansion") or {}).get("contains") or []:
            concepts.append(Concept(contained["system"], contained["code"], contained.get("display")))
        for concept in concepts:
            key = (concept.system, _normal_code(concept.system, concept.code))
            self._exact[key].add(name)
            if concept.display:
                self._displays.setdefault(key, concept.display)
        if concepts:
            self._first_concept.setdefault(name, concepts[0])
        self._cache.clear()

    @classmethod
    def load(cls, *directories: Path | str | None) -> ValueSetIndex:
        """Load the shipped value sets plus those in the given extra folders."""
        resources = []
        for directory in (SHIPPED_DIR, *directories):
            if directory is None:
                continue
            directory = Path(directory)
            if not directory.is_dir():
                raise ValueSetError(f"value set folder {directory} does not exist")
            for path in sorted(directory.glob("*.json")):
                try:
                    resources.append(json.loads(path.read_text(encoding="utf-8")))
                except (OSError, json.JSONDecodeError) as exc:
                    raise ValueSetError(f"{path}: {exc}") from exc
        try:
            return cls(resources)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueSetError(f"malformed ValueSet: {exc}") from exc

    # -- queries -------------------------------------------------------------
    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._titles)

    def title(self, name: str) -> str:
        return self._titles[_name(name)]

    def names_for(self, system: str | None, code: str | None) -> frozenset[str]:
        """All value sets that contain this (system, code)."""
        if not system or not code:
            return frozenset()
        key = (system, code)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        normal = _normal_code(system, code)
        found = set(self._exact.get((system, normal), ()))
        for prefix, name in self._prefixes.get(system, ()):
            if normal.startswith(prefix):
                found.add(name)
        hit = frozenset(found)
        if len(self._cache) < 100_000:
            self._cache[key] = hit
        return hit

    def classify(self, codeable_concept: Mapping[str, Any] | None) -> frozenset[str]:
        """Value sets matched by any coding of a (raw JSON) CodeableConcept.

        Called for every resource of a record (hundreds per call): plain type checks,
        as raw JSON is dicts and lists, and no new set for the usual single match."""
        if not isinstance(codeable_concept, dict):
            return _NOTHING
        codings = codeable_concept.get("coding")
        if type(codings) is not list:
            return _NOTHING
        found = _NOTHING
        remembered = self._cache.get  # names_for's memo, looked up here first: no call per coding
        for coding in codings:
            if type(coding) is dict:
                system, code = coding.get("system"), coding.get("code")
                if type(system) is str and type(code) is str:
                    hit = remembered((system, code))
                    if hit is None:
                        hit = self.names_for(system, code)
                    if hit:
                        found = found | hit if found else hit
        return found

    def display_of(self, system: str | None, code: str | None) -> str | None:
        """The display a value set gives this code (e.g. 'aspirin 81 MG Oral Tablet'), if any."""
        if not system or not code:
            return None
        return self._displays.get((system, _normal_code(system, code)))

    def codes_of(self, names: Iterable[str]) -> set[tuple[str, str]]:
        """Every explicitly listed (system, code) of the named value sets."""
        wanted = {_name(n) for n in names}
        return {key for key, members in self._exact.items() if members & wanted}

    def contains(self, name: str, system: str | None, code: str | None) -> bool:
        return _name(name) in self.names_for(system, code)

    def preferred(self, name: str) -> Concept:
        """The code used when the service orders this concept: the first one listed."""
        return self._first_concept[_name(name)]


_NOTHING: frozenset[str] = frozenset()


def _name(name_or_url: str) -> str:
    return name_or_url.rsplit("/", 1)[-1]
