"""Limits on hostile JSON: nesting depth, string and key length, Bundle size.

Checked by the service on the envelope of a hook call (service.protocol.load_json)
and, for the entries of prefetch Bundles, on the elements of a resource that a rule
reads, when it is read (resources.ResourceParser): the entries no rule reads, most
of a long record, are set aside on their codes and never looked into, so checking
every value of them would be work for nothing (issue #7).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")


@dataclass(frozen=True)
class JsonLimits:
    max_depth: int = 64
    max_string_length: int = 100_000
    max_bundle_entries: int = 10_000

    @classmethod
    def of(cls, settings: Any) -> JsonLimits:
        return cls(settings.max_json_depth, settings.max_string_length, settings.max_bundle_entries)


class InputLimitError(Exception):
    """Well-formed JSON beyond a limit, or not FHIR-shaped where it must be (HTTP 400)."""


def check_json(data: Any, limits: JsonLimits, depth: int = 0) -> None:
    """Depth, string and key length, resourceType shape and Bundle size, level by level;
    ``depth`` is how deep ``data`` itself lies in the body."""
    if type(data) is str and len(data) > limits.max_string_length:
        raise InputLimitError(f"a string longer than {limits.max_string_length} characters")
    level = [data] if type(data) is dict or type(data) is list else []
    while level:
        depth += 1
        if depth > limits.max_depth:
            raise InputLimitError(f"the JSON body is nested deeper than {limits.max_depth} levels")
        deeper: list[Any] = []
        push = deeper.append
        for value in level:
            if type(value) is dict:
                for key in value:
                    if len(key) > limits.max_string_length:
                        raise InputLimitError(f"a key longer than {limits.max_string_length} characters")
                if "resourceType" in value:
                    check_resource_shape(value, limits)
                items: Any = value.values()
            else:
                items = value
            for item in items:
                kind = type(item)
                if kind is str:
                    if len(item) > limits.max_string_length:
                        raise InputLimitError(f"a string longer than {limits.max_string_length} characters")
                elif kind is dict or kind is list:
                    push(item)
        level = deeper


@lru_cache(maxsize=256)  # a call holds a handful of types, hundreds of times each
def _is_resource_type(name: str) -> bool:
    return RESOURCE_TYPE.match(name) is not None


def check_resource_shape(value: dict, limits: JsonLimits) -> None:
    resource_type = value["resourceType"]
    if not (type(resource_type) is str and len(resource_type) <= 64 and _is_resource_type(resource_type)):
        raise InputLimitError("resourceType: must be the name of a FHIR resource type")
    if resource_type == "Bundle":
        entries = value.get("entry", [])
        if type(entries) is not list or not all(type(e) is dict for e in entries):
            raise InputLimitError("a Bundle's entry must be an array of objects")
        if len(entries) > limits.max_bundle_entries:
            raise InputLimitError(f"a Bundle with more than {limits.max_bundle_entries} entries")


def check_bundle_shell(bundle: dict, limits: JsonLimits, depth: int) -> None:
    """A Bundle at ``depth`` whose entries are checked where they are read: its own elements
    and the number and shape of its entries. Of an entry, fhir_mappings.record.gather reads
    only the resource's type and id and search.mode, and a rule reads only some elements of
    some resources (checked then, by resources.ResourceParser); a fullUrl or a search score is
    never read, so walking 350 entries for them was a fifth of a call (issue #7)."""
    check_resource_shape(bundle, limits)
    check_json({k: v for k, v in bundle.items() if k != "entry"}, limits, depth - 1)
