"""The paging plan, exhaustively, against a model provider (no servers)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.paging import PageOutOfPlan, PageRequest, PagingPlan, PagingState, check_page
from tradekit.domain import TimeWindow, Trade


def make_trades(timestamps: list[int]) -> list[Trade]:
    """Trades at ``timestamps`` with ids increasing in (ts) order, as the provider numbers them."""
    return [
        Trade("BTC", 1000 + i * 3, ts, Decimal("27000.01"), Decimal("0.5"))
        for i, ts in enumerate(sorted(timestamps))
    ]


def provider_page(trades: list[Trade], request: PageRequest, page_size: int) -> list[Trade]:
    """The model provider: the first ``page_size`` trades in the request's range."""
    return [t for t in trades if request.start_ms <= t.ts_ms < request.end_ms][:page_size]


def run_plan(
    trades: list[Trade], window: TimeWindow, page_size: int
) -> tuple[PagingPlan, list[Trade], list[PageRequest]]:
    """Drive a plan to its end against the model provider, refusing to loop."""
    plan = PagingPlan(window, page_size=page_size)
    delivered: list[Trade] = []
    requests: list[PageRequest] = []
    while (request := plan.next_request) is not None:
        requests.append(request)
        assert len(requests) <= window.length_ms + 1, "paging did not end"
        step = plan.feed(provider_page(trades, request, page_size))
        delivered.extend(step.new_trades)
    return plan, delivered, requests


timestamps = st.lists(st.integers(min_value=0, max_value=40), max_size=120)
windows = st.tuples(st.integers(0, 45), st.integers(1, 45)).map(
    lambda p: TimeWindow(p[0], p[0] + p[1])
)


@settings(max_examples=1500, deadline=None)
@given(timestamps, windows, st.integers(min_value=1, max_value=7))
def test_plan_delivers_exactly_the_window_or_stops_at_the_first_overfull_millisecond(
    ts_list: list[int], window: TimeWindow, page_size: int
) -> None:
    """Done: the union is the window's trade set, each once; else stuck at the first overfull ms."""
    trades = make_trades(ts_list)
    expected = [t for t in trades if window.contains(t.ts_ms)]
    per_ms = Counter(t.ts_ms for t in expected)
    overfull = sorted(ms for ms, n in per_ms.items() if n >= page_size)
    plan, delivered, _ = run_plan(trades, window, page_size)
    assert len({t.trade_id for t in delivered}) == len(delivered)
    if overfull:
        assert plan.state is PagingState.STUCK
        assert plan.stuck_ms == overfull[0]
        assert delivered == expected[: len(delivered)]
        assert all(t.ts_ms <= overfull[0] for t in delivered)
    else:
        assert plan.state is PagingState.DONE
        assert delivered == expected
        assert plan.trades == len(expected)


@settings(max_examples=500, deadline=None)
@given(timestamps, windows, st.integers(min_value=1, max_value=7))
def test_every_request_starts_after_the_previous_one(
    ts_list: list[int], window: TimeWindow, page_size: int
) -> None:
    """Request start times strictly increase, so paging can never repeat a request."""
    _, _, requests = run_plan(make_trades(ts_list), window, page_size)
    starts = [r.start_ms for r in requests]
    assert starts == sorted(set(starts))
    assert all(r.end_ms == window.end_ms for r in requests)


def test_ties_straddling_a_page_boundary_are_delivered_once() -> None:
    """Ten trades in one ms across the 100 boundary: page 2 repeats the first ones, sent once."""
    ts_list = list(range(95)) + [95] * 10 + list(range(96, 150))
    trades = make_trades(ts_list)
    plan, delivered, requests = run_plan(trades, TimeWindow(0, 200), 100)
    assert plan.state is PagingState.DONE
    assert delivered == trades
    assert [r.start_ms for r in requests] == [0, 95]


def test_a_full_page_in_one_millisecond_is_stuck_without_a_second_request() -> None:
    """150 trades at one ms: the first full page says stuck; no request is repeated."""
    trades = make_trades([7] * 150)
    plan, delivered, requests = run_plan(trades, TimeWindow(0, 100), 100)
    assert plan.state is PagingState.STUCK
    assert plan.stuck_ms == 7
    assert len(requests) == 1
    assert delivered == trades[:100]


def test_an_empty_window_is_done_after_one_page() -> None:
    """No trades: one request, done, nothing delivered."""
    plan, delivered, requests = run_plan([], TimeWindow(10, 20), 100)
    assert (plan.state, delivered, len(requests)) == (PagingState.DONE, [], 1)


def test_a_page_outside_the_request_is_rejected_and_changes_nothing() -> None:
    """A trade before startTime is a provider fault: PageOutOfPlan, and the request stays."""
    plan = PagingPlan(TimeWindow(10, 20))
    with pytest.raises(PageOutOfPlan, match="outside"):
        plan.feed(make_trades([9]))
    assert plan.next_request == PageRequest(10, 20)
    assert plan.pages == 0


def test_an_unsorted_page_is_rejected() -> None:
    """Trades out of (ts, tradeId) order break the protocol."""
    trades = make_trades([1, 2])
    with pytest.raises(PageOutOfPlan, match="order"):
        check_page(PageRequest(0, 10), list(reversed(trades)), 100)


def test_an_oversized_page_is_rejected() -> None:
    """More trades than a page holds break the protocol."""
    with pytest.raises(PageOutOfPlan, match="more than"):
        check_page(PageRequest(0, 10), make_trades([1, 2, 3]), 2)


def test_feeding_a_finished_plan_is_an_error() -> None:
    """After done there is no request to answer."""
    plan = PagingPlan(TimeWindow(0, 5))
    plan.feed([])
    with pytest.raises(RuntimeError, match="done"):
        plan.feed([])
