"""A bounded LRU of answers for closed windows, invalidated exactly by processor events.

Key: (symbol, end_ms, window_ms). A trade or correction at time t for symbol S drops every entry
of S whose window contains t; a verified window drops S's unverified entries ending at or before
its end (their ``verified`` flag may flip). A read that raced with an invalidation of its own window
is never stored: callers take :meth:`VwapCache.token` before reading the database and
:meth:`put` refuses the value when an invalidation since then touched the window (the last
:data:`RACE_MEMORY` invalidations of each symbol are remembered; a read older than those is
refused). A busy symbol is invalidated every few milliseconds by its live trades, so refusing on
any invalidation of the symbol would leave its history uncached.

Entries are kept as tuples of atoms (strings, ints, Decimals), which Python's cyclic garbage
collector stops tracking, not as point objects: a full collection then no longer walks a
hundred thousand cached points, which paused the whole service for up to 150 ms as the cache
grew (measured with the query benchmark: p99 from about 50 ms to over 100 ms).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from decimal import Decimal
from itertools import islice

from vwap.points import Sums, VwapPoint

CacheKey = tuple[str, int, int]
#: notional, volume, trade count, verified.
_Entry = tuple[Decimal, Decimal, int, bool]

#: Per symbol: size class -> start bucket -> keys. A window of ``w`` ms has class
#: ``c = w.bit_length()`` (so ``w < 2**c``) and lies in bucket ``start >> c``; a time ``t`` can
#: only be inside windows of class ``c`` starting in ``(t - 2**c, t]``, which is at most two
#: buckets. Inserting and evicting are O(1); invalidating a time is O(classes + matches).
_Index = dict[int, dict[int, set[CacheKey]]]

#: Invalidations remembered per symbol to judge a put that raced with them.
RACE_MEMORY = 512
#: What an invalidation touched: windows containing a time (ts, None) or, for a verified
#: window, windows ending at or before a time (None, until).
_Touched = tuple[int | None, int | None]


class VwapCache:
    """LRU of closed-window points with a per-symbol interval index; not thread-safe (asyncio)."""

    def __init__(self, *, max_entries: int) -> None:
        self._max = max_entries
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._index: dict[str, _Index] = {}
        self._generation: dict[str, int] = {}
        self._recent: dict[str, deque[_Touched]] = {}
        #: Per symbol, the keys of unverified entries (few: recent windows), so that a verified
        #: window does not scan the whole cache.
        self._unverified: dict[str, set[CacheKey]] = {}
        #: Times everything was forgotten (part of every token: older reads are refused).
        self._forgotten = 0
        self.hits = 0
        self.misses = 0
        self.invalidations = 0

    def __len__(self) -> int:
        return len(self._entries)

    def token(self, symbol: str) -> int:
        """The symbol's invalidation generation; pass it to :meth:`put`."""
        return self._forgotten + self._generation.get(symbol, 0)

    def get(self, key: CacheKey) -> VwapPoint | None:
        """The cached point, or None."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        notional, volume, count, verified = entry
        return VwapPoint(key[0], key[1], key[2], Sums(notional, volume, count), verified)

    def put(self, point: VwapPoint, token: int) -> bool:
        """Store ``point`` unless an invalidation after ``token`` was taken touched its window."""
        symbol = point.symbol
        if self._max <= 0:
            return False
        since = self._forgotten + self._generation.get(symbol, 0) - token
        if since and not self._untouched(point, since):
            return False
        key = (symbol, point.end_ms, point.window_ms)
        entries = self._entries
        if key in entries:
            entries.move_to_end(key)
        else:
            size = key[2].bit_length()
            classes = self._index.get(symbol)
            if classes is None:
                classes = self._index[symbol] = {}
            buckets = classes.get(size)
            if buckets is None:
                buckets = classes[size] = {}
            bucket = (key[1] - key[2]) >> size
            keys = buckets.get(bucket)
            if keys is None:
                buckets[bucket] = {key}
            else:
                keys.add(key)
            if len(entries) >= self._max:
                old_key, _ = entries.popitem(last=False)
                self._unindex(old_key)
        sums = point.sums
        entries[key] = (sums.notional, sums.volume, sums.count, point.verified)
        unverified = self._unverified.get(symbol)
        if point.verified:
            if unverified is not None:
                unverified.discard(key)
        elif unverified is None:
            self._unverified[symbol] = {key}
        else:
            unverified.add(key)
        return True

    def _untouched(self, point: VwapPoint, since: int) -> bool:
        """True when none of the symbol's last ``since`` invalidations touched the window."""
        recent = self._recent.get(point.symbol)
        if recent is None or since > len(recent):
            return False  # older than what is remembered
        start, end = point.end_ms - point.window_ms, point.end_ms
        for at, until in islice(reversed(recent), since):
            if at is not None and start <= at < end:
                return False
            if until is not None and end <= until:
                return False
        return True

    def _invalidated(self, symbol: str, touched: _Touched) -> None:
        self._generation[symbol] = self._generation.get(symbol, 0) + 1
        recent = self._recent.get(symbol)
        if recent is None:
            recent = self._recent[symbol] = deque(maxlen=RACE_MEMORY)
        recent.append(touched)

    def _unindex(self, key: CacheKey) -> None:
        symbol, end_ms, window_ms = key
        unverified = self._unverified.get(symbol)
        if unverified is not None:
            unverified.discard(key)
        size = window_ms.bit_length()
        classes = self._index[symbol]
        buckets = classes[size]
        bucket = (end_ms - window_ms) >> size
        keys = buckets[bucket]
        keys.discard(key)
        if not keys:
            del buckets[bucket]
            if not buckets:
                del classes[size]

    def _drop(self, key: CacheKey) -> None:
        if self._entries.pop(key, None) is not None:
            self._unindex(key)
            self.invalidations += 1

    def invalidate_time(self, symbol: str, ts_ms: int) -> None:
        """Drop every entry of ``symbol`` whose window contains ``ts_ms``."""
        self._invalidated(symbol, (ts_ms, None))
        classes = self._index.get(symbol)
        if not classes:
            return
        doomed: list[CacheKey] = []
        for size, buckets in classes.items():
            for bucket in range((ts_ms - (1 << size) + 1) >> size, (ts_ms >> size) + 1):
                for key in buckets.get(bucket, ()):
                    if key[1] - key[2] <= ts_ms < key[1]:
                        doomed.append(key)
        for key in doomed:
            self._drop(key)

    def forget(self, symbol: str | None) -> None:
        """Drop every entry of ``symbol`` (None: of every symbol) and refuse every read begun
        before: the events that would have invalidated them precisely were lost."""
        if symbol is None:
            self._forgotten += 1
            self._recent.clear()  # a racing put then finds nothing to clear it
            doomed = list(self._entries)
        else:
            self._generation[symbol] = self._generation.get(symbol, 0) + 1
            self._recent.pop(symbol, None)
            doomed = [key for key in self._entries if key[0] == symbol]
        for key in doomed:
            self._drop(key)

    def invalidate_verified(self, symbol: str, until_ms: int) -> None:
        """Drop the unverified entries of ``symbol`` ending at or before ``until_ms``."""
        self._invalidated(symbol, (None, until_ms))
        doomed = [key for key in self._unverified.get(symbol, ()) if key[1] <= until_ms]
        for key in doomed:
            self._drop(key)
