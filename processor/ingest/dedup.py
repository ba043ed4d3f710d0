"""Recent trade ids per symbol (pure): drops duplicate ``(symbol, trade_id)`` frames before they
reach the database, in bounded memory.

Each symbol remembers its newest ``capacity`` ids in arrival order; older ones are forgotten, so
a very late duplicate of a forgotten id passes here and is stopped by the database insert
(``NOT EXISTS`` / ``ON CONFLICT DO NOTHING``). Out-of-order ids are accepted like any other.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

#: Default number of ids remembered per symbol.
DEFAULT_CAPACITY = 200_000


class RecentIds:
    """A bounded set of recently seen trade ids per symbol."""

    __slots__ = ("_capacity", "_order", "_seen")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"dedup capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        self._seen: dict[str, set[int]] = {}
        self._order: dict[str, deque[int]] = {}

    @property
    def capacity(self) -> int:
        """Ids remembered per symbol."""
        return self._capacity

    def add(self, symbol: str, trade_id: int) -> bool:
        """Remember ``(symbol, trade_id)``; True when it was new, False for a duplicate."""
        seen = self._seen.get(symbol)
        if seen is None:
            seen = self._seen[symbol] = set()
            self._order[symbol] = deque()
        elif trade_id in seen:
            return False
        order = self._order[symbol]
        seen.add(trade_id)
        order.append(trade_id)
        if len(order) > self._capacity:
            seen.discard(order.popleft())
        return True

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        symbol, trade_id = key
        seen = self._seen.get(symbol)
        return seen is not None and trade_id in seen

    def seed(self, symbol: str, trade_ids: Iterable[int]) -> None:
        """Remember ids known to be stored, oldest first (the newest stay longest)."""
        for trade_id in trade_ids:
            self.add(symbol, trade_id)

    def size(self, symbol: str) -> int:
        """Ids currently remembered for ``symbol``."""
        return len(self._order.get(symbol, ()))
