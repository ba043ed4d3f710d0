"""A bounded LRU of answers for closed windows, invalidated exactly by processor events.

Key: (symbol, end_ms, window_ms). A trade or correction at time t for symbol S drops every entry
of S whose window contains t; a verified window drops S's unverified entries ending at or before
its end (their ``verified`` flag may flip). A read that raced with an invalidation is never
stored: callers take :meth:`VwapCache.token` before reading the database and :meth:`put` refuses
the value when the symbol was invalidated since.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict

from vwap.points import VwapPoint

CacheKey = tuple[str, int, int]


class VwapCache:
    """LRU of closed-window points with per-symbol interval index; not thread-safe (asyncio)."""

    def __init__(self, *, max_entries: int) -> None:
        self._max = max_entries
        self._entries: OrderedDict[CacheKey, VwapPoint] = OrderedDict()
        #: Per symbol: sorted (start_ms, end_ms, window_ms) of cached windows.
        self._by_start: dict[str, list[tuple[int, int, int]]] = {}
        self._max_window: dict[str, int] = {}
        self._generation: dict[str, int] = {}
        self.hits = 0
        self.misses = 0
        self.invalidations = 0

    def __len__(self) -> int:
        return len(self._entries)

    def token(self, symbol: str) -> int:
        """The symbol's invalidation generation; pass it to :meth:`put`."""
        return self._generation.get(symbol, 0)

    def get(self, key: CacheKey) -> VwapPoint | None:
        """The cached point, or None."""
        point = self._entries.get(key)
        if point is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return point

    def put(self, point: VwapPoint, token: int) -> bool:
        """Store ``point`` unless its symbol was invalidated after ``token`` was taken."""
        if self._max <= 0 or self.token(point.symbol) != token:
            return False
        key = (point.symbol, point.end_ms, point.window_ms)
        if key not in self._entries:
            index = self._by_start.setdefault(point.symbol, [])
            bisect.insort(index, (point.start_ms, point.end_ms, point.window_ms))
            self._max_window[point.symbol] = max(
                self._max_window.get(point.symbol, 0), point.window_ms
            )
        self._entries[key] = point
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            old_key, _ = self._entries.popitem(last=False)
            self._unindex(old_key)
        return True

    def _unindex(self, key: CacheKey) -> None:
        symbol, end_ms, window_ms = key
        index = self._by_start[symbol]
        item = (end_ms - window_ms, end_ms, window_ms)
        pos = bisect.bisect_left(index, item)
        if pos < len(index) and index[pos] == item:
            del index[pos]

    def _drop(self, key: CacheKey) -> None:
        if self._entries.pop(key, None) is not None:
            self._unindex(key)
            self.invalidations += 1

    def invalidate_time(self, symbol: str, ts_ms: int) -> None:
        """Drop every entry of ``symbol`` whose window contains ``ts_ms``."""
        self._generation[symbol] = self.token(symbol) + 1
        index = self._by_start.get(symbol)
        if not index:
            return
        lo = bisect.bisect_right(index, (ts_ms - self._max_window[symbol], 2**63, 0))
        hi = bisect.bisect_right(index, (ts_ms, 2**63, 0))
        doomed = [(symbol, end, w) for start, end, w in index[lo:hi] if start <= ts_ms < end]
        for key in doomed:
            self._drop(key)

    def invalidate_verified(self, symbol: str, until_ms: int) -> None:
        """Drop the unverified entries of ``symbol`` ending at or before ``until_ms``."""
        self._generation[symbol] = self.token(symbol) + 1
        doomed = [
            key
            for key, point in self._entries.items()
            if key[0] == symbol and not point.verified and point.end_ms <= until_ms
        ]
        for key in doomed:
            self._drop(key)
