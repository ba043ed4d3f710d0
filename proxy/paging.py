"""The paging plan for one window: a pure state machine, no I/O.

The provider answers ``GET /trades?ticker=&startTime=&endTime=`` with at most
:data:`PAGE_SIZE` trades with ``startTime <= ts < endTime``, sorted by ``(ts, tradeId)``. The
only way forward is an inclusive ``startTime``: the next request starts at the time of the
last trade received, so the trades of that millisecond come again and are removed by
``tradeId``.

    plan = PagingPlan(window)
    while (request := plan.next_request) is not None:
        step = plan.feed(await fetch(request))   # step.new_trades: trades not seen before
    if plan.stuck_ms is not None: ...            # a full page inside one millisecond

Invariants (tested with hypothesis in ``tests/proxy/test_paging.py``):

* every request starts strictly after the previous one, so paging ends after at most
  ``window.length_ms`` requests and never loops;
* a page with fewer than :data:`PAGE_SIZE` trades ends the window (``done``);
* a full page whose trades all share one millisecond cannot be paged past: asking from that
  millisecond again returns the same page and asking from the next one could lose trades.
  The plan stops there (``stuck``) instead of looping;
* the union of the new trades is exactly the provider's trade set of the window, each once.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from tradekit.domain import TimeWindow, Trade

#: Most trades the provider returns for one request.
PAGE_SIZE = 100


class PagingState(enum.Enum):
    """Where the plan is."""

    FETCHING = "fetching"
    DONE = "done"
    STUCK = "stuck"


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One provider request: trades with ``start_ms <= ts < end_ms``."""

    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class PageStep:
    """What one page brought: its trades not seen before, and the state after it."""

    new_trades: tuple[Trade, ...]
    state: PagingState


class PageOutOfPlan(ValueError):
    """A page that breaks the protocol for the request it answers (a provider fault)."""


def check_page(request: PageRequest, trades: Sequence[Trade], page_size: int) -> None:
    """Raise :class:`PageOutOfPlan` unless ``trades`` can answer ``request``.

    At most ``page_size`` trades, each inside ``[start_ms, end_ms)``, strictly increasing by
    ``(ts, tradeId)``.
    """
    if len(trades) > page_size:
        raise PageOutOfPlan(f"page holds {len(trades)} trades, more than {page_size}")
    previous: tuple[int, int] | None = None
    for trade in trades:
        if not request.start_ms <= trade.ts_ms < request.end_ms:
            raise PageOutOfPlan(
                f"trade {trade.trade_id} at {trade.ts_ms} is outside the requested "
                f"[{request.start_ms}, {request.end_ms})"
            )
        if previous is not None and trade.sort_key <= previous:
            raise PageOutOfPlan(f"trade {trade.trade_id} is out of (ts, tradeId) order")
        previous = trade.sort_key


class PagingPlan:
    """Feed it the answer to :attr:`next_request`; it says what is new and what comes next."""

    def __init__(self, window: TimeWindow, *, page_size: int = PAGE_SIZE) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.window = window
        self.page_size = page_size
        self._state = PagingState.FETCHING
        #: Time of the last trade seen: where the next request starts (inclusive).
        self.cursor_ms = window.start_ms
        #: Ids already delivered at ``cursor_ms``; the next page repeats them.
        self._seen_at_cursor: frozenset[int] = frozenset()
        self.pages = 0
        self.trades = 0
        #: The millisecond the plan could not page past, once stuck.
        self.stuck_ms: int | None = None

    @property
    def state(self) -> PagingState:
        """Fetching, done or stuck."""
        return self._state

    @property
    def next_request(self) -> PageRequest | None:
        """The request to send next, or None when the plan is done or stuck."""
        if self._state is not PagingState.FETCHING:
            return None
        return PageRequest(self.cursor_ms, self.window.end_ms)

    def feed(self, trades: Sequence[Trade]) -> PageStep:
        """Take the provider's answer to :attr:`next_request`.

        Raises :class:`PageOutOfPlan` (and changes nothing) when the page cannot answer the
        request, and ``RuntimeError`` when no request is outstanding.
        """
        request = self.next_request
        if request is None:
            raise RuntimeError(f"paging is {self._state.value}; no request to answer")
        check_page(request, trades, self.page_size)
        new_trades = tuple(
            t
            for t in trades
            if not (t.ts_ms == self.cursor_ms and t.trade_id in self._seen_at_cursor)
        )
        self.pages += 1
        self.trades += len(new_trades)
        if len(trades) < self.page_size:
            self._state = PagingState.DONE
        elif trades[0].ts_ms == trades[-1].ts_ms:
            self._state = PagingState.STUCK
            self.cursor_ms = self.stuck_ms = trades[-1].ts_ms
        else:
            last_ms = trades[-1].ts_ms
            self.cursor_ms = last_ms
            self._seen_at_cursor = frozenset(t.trade_id for t in trades if t.ts_ms == last_ms)
        return PageStep(new_trades, self._state)
