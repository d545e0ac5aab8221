"""A bounded least-recently-used map, safe to share between threads.

For the two caches of the facts extraction (validated resources, the facts of a
record), which a worker's threads share.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class BoundedLru:
    """At most max_entries values, and at most max_weight of weight (given with each value)
    when set; the least recently used go first. max_entries=0 keeps nothing."""

    def __init__(self, max_entries: int, max_weight: int | None = None):
        self.max_entries = max_entries
        self.max_weight = max_weight
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        """The value, now the most recently used; None when unknown."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
        return found[0] if found is not None else None

    def put(self, key: Hashable, value: Any, weight: int = 0) -> None:
        if not self.max_entries or (self.max_weight is not None and weight > self.max_weight):
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._weight -= old[1]
            self._entries[key] = (value, weight)
            self._weight += weight
            while len(self._entries) > self.max_entries or (
                    self.max_weight is not None and self._weight > self.max_weight):
                _, (_, dropped) = self._entries.popitem(last=False)
                self._weight -= dropped

    @property
    def weight(self) -> int:
        return self._weight

    def __len__(self) -> int:
        return len(self._entries)
