"""The live rolling VWAP of one symbol for one (window, step), as a pure state machine.

Fed trades and corrections in event order, it emits:

- a live :class:`Update` after each change, for ``[newest_ts + 1 - window, newest_ts + 1)``;
- a closed :class:`Update` for each step boundary ``k * step`` once a trade at or after it
  has been seen;
- a :class:`Revision` for each already-emitted closed point (kept for ``retention_ms``) whose
  window contains the old or new time of a corrected trade (or a late trade): exactly one per
  point per event, new = old + delta, independent of any database timing;
- a :class:`Verified` when a verified window grows the symbol's verified range: every closed
  point whose window lies in it is final (one message per event, however many points it
  covers, so a watermark jumping over an hour of one-second points is not a burst).
- :class:`RevisionsLost` instead of revisions when a change touches closed points emitted
  before the revision horizon, no longer kept (its streams are then ended).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from tradekit.domain import Trade
from vwap.points import Sums, VwapPoint, is_verified

Key = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Update:
    """A new value of the rolling VWAP; ``closed`` for a step-boundary point."""

    point: VwapPoint
    closed: bool
    sequence: int


@dataclass(frozen=True, slots=True)
class Revision:
    """A closed point changed by a correction."""

    old: VwapPoint
    new: VwapPoint
    reason: str
    sequence: int


@dataclass(frozen=True, slots=True)
class Verified:
    """The symbol's verified range is now ``[verified_from_ms, verified_until_ms)`` (from the
    first trade when ``verified_from_ms`` is None): closed points inside it are final."""

    symbol: str
    verified_from_ms: int | None
    verified_until_ms: int
    sequence: int


@dataclass(frozen=True, slots=True)
class RevisionsLost:
    """A change touched closed points emitted before the revision horizon, which are no longer
    kept: they cannot be revised, so their subscribers are ended to read them afresh (a later
    :class:`Verified` would otherwise declare final the values they hold)."""

    reason: str
    sequence: int


#: What subscribers receive.
Streamed = Update | Revision | Verified
Message = Streamed | RevisionsLost


def _contrib(trade: Trade | None, start_ms: int, end_ms: int) -> Sums:
    if trade is None or not start_ms <= trade.ts_ms < end_ms:
        return Sums()
    return Sums.of(trade)


class RollingWindow:
    """Rolling sums over the newest ``window_ms`` of one symbol's trades, with closed points."""

    def __init__(
        self,
        symbol: str,
        *,
        window_ms: int,
        step_ms: int,
        retention_ms: int,
        trades: Iterable[Trade] = (),
        verified_until_ms: int | None = None,
        verified_from_ms: int | None = None,
    ) -> None:
        self.symbol = symbol
        #: Everything before this instant is reconciled (None: nothing known to be)...
        self.verified_until_ms = verified_until_ms
        #: ... from this instant on (None: from the first trade).
        self.verified_from_ms = verified_from_ms
        self.window_ms = window_ms
        self.step_ms = step_ms
        self.retention_ms = retention_ms
        self._keys: list[Key] = []
        self._trades: dict[int, Trade] = {}
        self._sums = Sums()
        self.end_ms: int | None = None
        #: Emitted closed points still open to revision: end_ms -> sums.
        self.closed: dict[int, Sums] = {}
        #: The first closed point emitted, and the newest one no longer kept (past the
        #: revision horizon): a change between them may touch points that cannot be revised.
        self._first_closed: int | None = None
        self._forgotten_through: int | None = None
        self._last_boundary: int | None = None
        #: Before the first trade: the clock's boundary when the state was loaded (a first
        #: trade older than it, a backfill, closes nothing up to it: those points are history).
        self._idle_through: int | None = None
        for trade in sorted(trades, key=lambda t: t.sort_key):
            self._insert(trade)
        if self._keys:
            newest = self._keys[-1][0]
            self.end_ms = newest + 1
            self._sums = self._range_sums(self.end_ms - window_ms, self.end_ms)
            self._last_boundary = newest - newest % step_ms
            self._prune()

    # -- queries ---------------------------------------------------------------------------

    @property
    def trades_held(self) -> int:
        """Trades kept in memory (the window, the step being built, the revision horizon)."""
        return len(self._trades)

    def live_point(self) -> VwapPoint | None:
        """The current live point, None before any trade."""
        if self.end_ms is None:
            return None
        return self._point(self.end_ms, self._sums)

    def _point(self, end_ms: int, sums: Sums) -> VwapPoint:
        verified = is_verified(
            end_ms - self.window_ms, end_ms, self.verified_until_ms, self.verified_from_ms
        )
        return VwapPoint(self.symbol, end_ms, self.window_ms, sums, verified)

    def on_window_verified(
        self,
        start_ms: int,
        end_ms: int,
        verified_until_ms: int | None = None,
        verified_from_ms: int | None = None,
        sequence: int = 0,
    ) -> list[Message]:
        """A reconciliation window was verified; a :class:`Verified` when it grows the verified
        range (which never shrinks).

        With the symbol's watermark after it (what the processor's events carry) the
        watermark becomes that; without it (events older than that field), it moves only when
        the window starts at or before it. The range's start is taken from the first event
        when no range was known, then only moves back (a backfill; None, from the first
        trade, is already as far back as it goes)."""
        before = (self.verified_until_ms, self.verified_from_ms)
        self._move_verified_range(start_ms, end_ms, verified_until_ms, verified_from_ms)
        until = self.verified_until_ms
        if until is None or (until, self.verified_from_ms) == before:
            return []
        return [Verified(self.symbol, self.verified_from_ms, until, sequence)]

    def _move_verified_range(
        self,
        start_ms: int,
        end_ms: int,
        verified_until_ms: int | None,
        verified_from_ms: int | None,
    ) -> None:
        if verified_from_ms is not None:
            known = self.verified_from_ms
            if self.verified_until_ms is None or (known is not None and verified_from_ms < known):
                self.verified_from_ms = verified_from_ms
        current = self.verified_until_ms
        if verified_until_ms is not None:
            if current is None or verified_until_ms > current:
                self.verified_until_ms = verified_until_ms
        elif current is not None and start_ms <= current < end_ms:
            self.verified_until_ms = end_ms

    def _range_sums(self, start_ms: int, end_ms: int) -> Sums:
        lo = bisect.bisect_left(self._keys, (start_ms, -(2**63)))
        hi = bisect.bisect_left(self._keys, (end_ms, -(2**63)))
        total = Sums()
        for ts, trade_id in self._keys[lo:hi]:
            del ts
            total = total + Sums.of(self._trades[trade_id])
        return total

    # -- state changes ---------------------------------------------------------------------

    def _horizon(self) -> int | None:
        if self.end_ms is None:
            return None
        return self.end_ms - self.window_ms - self.step_ms

    def _insert(self, trade: Trade) -> None:
        horizon = self._horizon()
        if trade.trade_id in self._trades or (horizon is not None and trade.ts_ms < horizon):
            return
        self._trades[trade.trade_id] = trade
        bisect.insort(self._keys, trade.sort_key)
        if self.end_ms is not None and self.end_ms - self.window_ms <= trade.ts_ms < self.end_ms:
            self._sums = self._sums + Sums.of(trade)

    def _remove(self, trade: Trade) -> None:
        stored = self._trades.pop(trade.trade_id, None)
        if stored is None:
            return
        pos = bisect.bisect_left(self._keys, stored.sort_key)
        del self._keys[pos]
        if self.end_ms is not None and self.end_ms - self.window_ms <= stored.ts_ms < self.end_ms:
            self._sums = self._sums - Sums.of(stored)

    def _prune(self) -> None:
        horizon = self._horizon()
        if horizon is None:
            return
        cut = bisect.bisect_left(self._keys, (horizon, -(2**63)))
        for _, trade_id in self._keys[:cut]:
            del self._trades[trade_id]
        del self._keys[:cut]
        if self._last_boundary is not None:
            oldest = self._last_boundary - self.retention_ms
            for end_ms in [e for e in self.closed if e <= oldest]:
                del self.closed[end_ms]
                self._forgotten_through = max(end_ms, self._forgotten_through or end_ms)

    def _advance(self, newest_ts: int, sequence: int) -> list[Message]:
        """Close the boundaries up to ``newest_ts`` and move the live end past it."""
        out: list[Message] = []
        latest = newest_ts - newest_ts % self.step_ms
        first = latest + self.step_ms  # nothing to close before the first trade
        if self._last_boundary is not None:
            first = self._first_to_close(latest)
        for boundary in range(first, newest_ts + 1, self.step_ms):
            out.append(self._close(boundary, sequence))
        # The clock may have closed boundaries past this trade already (a late trade on an
        # idle symbol): the last closed boundary never moves back, or they would close again.
        if self._last_boundary is None:
            # the first trade: an old one (a backfill) must not make the clock close every
            # boundary from it up to now on its next tick
            self._last_boundary = max(latest, self._idle_through or latest)
        elif latest > self._last_boundary:
            self._last_boundary = latest
        new_end = newest_ts + 1
        old_end = self.end_ms
        if old_end is None or new_end - self.window_ms >= old_end:
            self._sums = self._range_sums(new_end - self.window_ms, new_end)
        else:
            self._sums = (
                self._sums
                + self._range_sums(old_end, new_end)
                - self._range_sums(old_end - self.window_ms, new_end - self.window_ms)
            )
        self.end_ms = new_end
        return out

    def _close(self, boundary: int, sequence: int) -> Update:
        sums = self._range_sums(boundary - self.window_ms, boundary)
        self.closed[boundary] = sums
        if self._first_closed is None:
            self._first_closed = boundary
        return Update(self._point(boundary, sums), True, sequence)

    def _first_to_close(self, latest: int) -> int:
        """The first boundary still to close when ``latest`` is the newest: the one after the
        last closed, but none older than the revision horizon (after a long idle gap), always
        on the step grid."""
        assert self._last_boundary is not None
        step = self.step_ms
        horizon = -(-(latest - self.retention_ms) // step) * step  # rounded up to the grid
        return max(self._last_boundary + step, horizon)

    def close_through(self, now_ms: int, sequence: int) -> list[Message]:
        """Close the step boundaries up to ``now_ms`` when no trade arrived to close them (an
        idle symbol still gets its closed points); the live end does not move."""
        if self._last_boundary is None:
            # (not the clock's boundary as history: a live first trade arriving later than
            # the grace would lose the points after the subscription that hold it)
            return []
        latest = now_ms - now_ms % self.step_ms
        first = self._first_to_close(latest)
        out: list[Message] = []
        for boundary in range(first, latest + 1, self.step_ms):
            out.append(self._close(boundary, sequence))
        self._last_boundary = max(self._last_boundary, latest)
        self._prune()
        return out

    def take_closed_through(self, now_ms: int) -> None:
        """Count the step boundaries up to ``now_ms`` as closed without emitting them: the
        boundaries a state loaded now has passed are history (GetVwapSeries serves them), and
        closing them on the next tick would send a new subscriber of a symbol idle since its
        newest trade up to a revision horizon of points at once (3,600 per symbol for a 1 s
        step), past its queue's bound before it could read any."""
        latest = now_ms - now_ms % self.step_ms
        if self._last_boundary is None:  # no trade yet: closed points start after the first
            self._idle_through = max(latest, self._idle_through or latest)
            return
        if latest > self._last_boundary:
            self._last_boundary = latest
            self._prune()

    def _touches_forgotten(self, trade: Trade | None) -> bool:
        """Whether ``trade``'s time lies in an emitted closed point no longer kept: a boundary
        ``E`` on the step grid with ``t < E <= t + window`` between the first point sent and
        the newest forgotten (boundaries skipped after an idle gap count as sent: the
        safe side)."""
        if trade is None or self._first_closed is None or self._forgotten_through is None:
            return False
        step = self.step_ms
        lowest = max(trade.ts_ms // step * step + step, self._first_closed)
        return lowest <= min(trade.ts_ms + self.window_ms, self._forgotten_through)

    def _revise(
        self, old: Trade | None, new: Trade | None, reason: str, sequence: int
    ) -> list[Message]:
        if self._touches_forgotten(old) or self._touches_forgotten(new):
            return [
                RevisionsLost(
                    f"{reason} changed closed points sent more than the revision horizon"
                    " (VWAP_REVISION_HORIZON) ago, which can no longer be revised on the stream;"
                    " read past points with GetVwapSeries",
                    sequence,
                )
            ]
        out: list[Message] = []
        for end_ms in sorted(self.closed):
            start_ms = end_ms - self.window_ms
            touched = any(t is not None and start_ms <= t.ts_ms < end_ms for t in (old, new))
            if not touched:
                continue
            before = self.closed[end_ms]
            after = before - _contrib(old, start_ms, end_ms) + _contrib(new, start_ms, end_ms)
            self.closed[end_ms] = after
            out.append(
                Revision(self._point(end_ms, before), self._point(end_ms, after), reason, sequence)
            )
        return out

    def _apply(
        self, old: Trade | None, new: Trade | None, reason: str, sequence: int
    ) -> list[Message]:
        out = self._revise(old, new, reason, sequence)
        before = (self.end_ms, self._sums)
        if old is not None:
            self._remove(old)
        if new is not None:
            if self.end_ms is None or new.ts_ms >= self.end_ms:
                out.extend(self._advance(new.ts_ms, sequence))
            self._insert(new)
        self._prune()
        live = self.live_point()
        if live is not None and (self.end_ms, self._sums) != before:
            out.append(Update(live, False, sequence))
        return out

    def on_trade(self, trade: Trade, sequence: int) -> list[Message]:
        """A new trade from the feed (ignored when already known)."""
        if trade.trade_id in self._trades:
            return []
        return self._apply(None, trade, f"late trade {trade.symbol} {trade.trade_id}", sequence)

    def on_correction(
        self,
        old: Trade | None,
        new: Trade | None,
        *,
        correction_id: int,
        kind: str,
        sequence: int,
    ) -> list[Message]:
        """A correction: ``old`` (None for an insert) replaced by ``new`` (None for a delete)."""
        trade = new if new is not None else old
        assert trade is not None
        reason = f"correction {correction_id}: {kind} {trade.symbol} trade {trade.trade_id}"
        return self._apply(old, new, reason, sequence)
