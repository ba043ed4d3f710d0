"""The live rolling window: live and closed points and revisions equal brute force."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradekit.domain import Trade
from vwap.points import Sums
from vwap.rolling import Revision, RevisionsLost, RollingWindow, Update, Verified


def _brute(trades: dict[int, Trade], start: int, end: int) -> Sums:
    total = Sums()
    for t in trades.values():
        if start <= t.ts_ms < end:
            total = total + Sums.of(t)
    return total


_money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("500"), places=2)

# An operation: ("trade", ts, price, qty) | ("update", pick, ts_shift, price, qty)
# | ("delete", pick) | ("insert", ts, price, qty) | ("tick", now): the clock reaches now
# | ("verify", until, from): reconciliation verified [from, until) (from None: unchanged; an
# earlier one moves the range's start back, as a backfill does)
_op = st.one_of(
    st.tuples(st.just("tick"), st.integers(0, 260)),
    st.tuples(st.just("verify"), st.integers(0, 260), st.none() | st.integers(0, 260)),
    st.tuples(st.just("trade"), st.integers(0, 200), _money, _money),
    st.tuples(st.just("trade"), st.integers(0, 200), _money, _money),
    st.tuples(st.just("update"), st.integers(0, 10**6), st.integers(-8, 8), _money, _money),
    st.tuples(st.just("delete"), st.integers(0, 10**6)),
    st.tuples(st.just("insert"), st.integers(0, 200), _money, _money),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 60), _money, _money), max_size=8),
    st.lists(_op, max_size=40),
    st.sampled_from([3, 7, 10, 25]),
    st.sampled_from([1, 4, 5, 10]),
    st.sampled_from([None, 0, 40, 120]),
)
def test_rolling_matches_brute_force(
    initial: list[tuple[int, Decimal, Decimal]],
    ops: list[tuple[object, ...]],
    window: int,
    step: int,
    verified_from: int | None,
) -> None:
    """Live points, closed points and revisions always equal sums over the current trades;
    each correction revises exactly the emitted closed points whose window holds its times;
    every boundary closes once, on the step grid, whether a trade or the clock closes it; every
    verified range grows, a Verified says what it is now (once per growth), so a client
    holding the messages knows each closed point final (flagged on its update, or inside the
    latest range announced) exactly when it is, never before."""
    truth: dict[int, Trade] = {i: Trade("BTC", i, ts, p, q) for i, (ts, p, q) in enumerate(initial)}
    rolling = RollingWindow(
        "BTC",
        window_ms=window,
        step_ms=step,
        retention_ms=10**9,
        trades=truth.values(),
        verified_from_ms=verified_from,
    )
    emitted: dict[int, Sums] = {}
    newest = max((t.ts_ms for t in truth.values()), default=None)
    next_id = len(truth)
    clock = 0
    watermark: int | None = None
    flagged: set[int] = set()  # closed points sent with verified = true
    announced: tuple[int | None, int | None] = (None, None)  # (from, until) last announced

    def _verified(start: int, end: int) -> bool:
        if watermark is None or end > watermark:
            return False
        return verified_from is None or verified_from <= start

    for seq, op in enumerate(ops, start=1):
        old: Trade | None = None
        new: Trade | None = None
        if op[0] == "tick" or op[0] == "verify":
            now = op[1]
            assert isinstance(now, int)
        elif op[0] == "trade" or op[0] == "insert":
            _, ts, price, qty = op
            assert isinstance(ts, int)
            assert isinstance(price, Decimal)
            assert isinstance(qty, Decimal)
            new = Trade("BTC", next_id, ts, price, qty)
            next_id += 1
        elif truth and op[0] == "update":
            _, pick, shift, price, qty = op
            assert isinstance(pick, int)
            assert isinstance(shift, int)
            assert isinstance(price, Decimal)
            assert isinstance(qty, Decimal)
            old = sorted(truth.values(), key=lambda t: t.trade_id)[pick % len(truth)]
            new = Trade("BTC", old.trade_id, max(0, old.ts_ms + shift), price, qty)
        elif truth and op[0] == "delete":
            _, pick = op
            assert isinstance(pick, int)
            old = sorted(truth.values(), key=lambda t: t.trade_id)[pick % len(truth)]
        else:
            continue
        if op[0] == "tick":
            clock = max(clock, now)
            messages = rolling.close_through(clock, seq)
        elif op[0] == "verify":
            start = op[2]
            assert start is None or isinstance(start, int)
            range_before = (verified_from, watermark)
            if start is not None and (
                watermark is None or (verified_from is not None and start < verified_from)
            ):
                verified_from = start
            watermark = now if watermark is None else max(watermark, now)
            messages = rolling.on_window_verified(now - 10, now, now, start, seq)
        elif op[0] == "trade":
            assert new is not None
            messages = rolling.on_trade(new, seq)
        else:
            messages = rolling.on_correction(
                old, new, correction_id=seq, kind=str(op[0]), sequence=seq
            )
        if old is not None:
            del truth[old.trade_id]
        if new is not None:
            truth[new.trade_id] = new
            newest = new.ts_ms if newest is None else max(newest, new.ts_ms)

        touched = {
            e
            for e in emitted
            if any(t is not None and e - window <= t.ts_ms < e for t in (old, new))
        }
        revised = [m for m in messages if isinstance(m, Revision)]
        assert sorted(r.old.end_ms for r in revised) == sorted(touched)
        for revision in revised:
            end = revision.old.end_ms
            assert revision.old.sums == emitted[end]
            assert revision.new.sums == _brute(truth, end - window, end)
            assert revision.sequence == seq
            emitted[end] = revision.new.sums
        for update in (m for m in messages if isinstance(m, Update)):
            point = update.point
            assert point.sums == _brute(truth, point.start_ms, point.end_ms)
            assert point.verified == _verified(point.start_ms, point.end_ms)
            if update.closed:
                assert point.end_ms % step == 0
                assert point.end_ms not in emitted
                assert newest is not None
                assert point.end_ms <= max(newest, clock)
                emitted[point.end_ms] = point.sums
                if point.verified:
                    flagged.add(point.end_ms)
            else:
                assert point.end_ms == (newest or 0) + 1
        ranges = [
            (m.verified_from_ms, m.verified_until_ms, m.sequence)
            for m in messages
            if isinstance(m, Verified)
        ]
        grew = op[0] == "verify" and (verified_from, watermark) != range_before
        assert ranges == ([(verified_from, watermark, seq)] if grew else [])
        if ranges:
            announced = (ranges[0][0], ranges[0][1])
        known_final = {
            e
            for e in emitted
            if e in flagged
            or (
                announced[1] is not None
                and e <= announced[1]
                and (announced[0] is None or announced[0] <= e - window)
            )
        }
        assert known_final == {e for e in emitted if _verified(e - window, e)}
        live = rolling.live_point()
        if live is not None:
            assert live.sums == _brute(truth, live.start_ms, live.end_ms)


def test_correction_revises_each_affected_closed_point_once() -> None:
    """A price correction inside two closed windows yields two revisions with exact deltas."""
    t1 = Trade("BTC", 1, 12, Decimal("10"), Decimal("1"))
    rolling = RollingWindow("BTC", window_ms=10, step_ms=5, retention_ms=1000)
    rolling.on_trade(t1, 1)
    out = rolling.on_trade(Trade("BTC", 2, 25, Decimal("11"), Decimal("2")), 2)
    closed = [m.point.end_ms for m in out if isinstance(m, Update) and m.closed]
    assert closed == [15, 20, 25]
    fixed = Trade("BTC", 1, 12, Decimal("12"), Decimal("1"))
    out = rolling.on_correction(t1, fixed, correction_id=17, kind="updated", sequence=3)
    revisions = [m for m in out if isinstance(m, Revision)]
    assert [(r.old.end_ms, r.old.sums.notional, r.new.sums.notional) for r in revisions] == [
        (15, Decimal("10"), Decimal("12")),
        (20, Decimal("10"), Decimal("12")),
    ]
    assert revisions[0].reason == "correction 17: updated BTC trade 1"


def test_a_change_to_a_point_past_the_revision_horizon_says_it_cannot_be_revised() -> None:
    """Closed points [0, 10) and [5, 15) were sent, then the market went on past the revision
    horizon (100 ms), so they are no longer kept. A correction of a trade inside them, and a
    late trade there, cannot be revised: the state says so (its streams are ended) instead of
    saying nothing, which left a later Verified declaring the stale values final (found by
    review). A correction inside the points still kept is revised as before."""
    t1 = Trade("BTC", 1, 7, Decimal("10"), Decimal("1"))
    rolling = RollingWindow("BTC", window_ms=10, step_ms=5, retention_ms=100)
    rolling.on_trade(t1, 1)
    out = rolling.on_trade(Trade("BTC", 2, 15, Decimal("11"), Decimal("1")), 2)
    assert [m.point.end_ms for m in out if isinstance(m, Update) and m.closed] == [10, 15]
    recent = Trade("BTC", 3, 190, Decimal("12"), Decimal("1"))
    rolling.on_trade(recent, 3)
    rolling.on_trade(Trade("BTC", 5, 200, Decimal("12"), Decimal("1")), 3)
    assert 10 not in rolling.closed  # past the horizon
    fixed = Trade("BTC", 1, 7, Decimal("5"), Decimal("1"))
    lost = rolling.on_correction(t1, fixed, correction_id=9, kind="updated", sequence=4)
    late = rolling.on_trade(Trade("BTC", 4, 3, Decimal("1"), Decimal("1")), 5)
    kept = rolling.on_correction(
        recent,
        Trade("BTC", 3, 190, Decimal("13"), Decimal("1")),
        correction_id=10,
        kind="updated",
        sequence=6,
    )
    assert [type(m) for m in lost] == [RevisionsLost]
    assert lost[0].reason.startswith("correction 9: updated BTC trade 1 changed closed points")
    assert "VWAP_REVISION_HORIZON" in lost[0].reason
    assert [type(m) for m in late][:1] == [RevisionsLost]
    assert not any(isinstance(m, RevisionsLost) for m in kept)
    assert any(isinstance(m, Revision) for m in kept)


def test_a_change_inside_no_forgotten_point_is_not_taken_for_one() -> None:
    """A 1 s window on a 1 min step: each point covers the last second of its minute. A trade
    older than the horizon in the middle of a minute lies in no point sent, so it is nothing
    to revise (the first check took the whole span as covered and ended the streams), while
    one in the last second of a forgotten minute is."""
    hour = 3_600_000
    rolling = RollingWindow("BTC", window_ms=1_000, step_ms=60_000, retention_ms=hour)
    rolling.on_trade(Trade("BTC", 1, 0, Decimal("10"), Decimal("1")), 1)
    for now in range(60_000, 3 * hour, 60_000):
        rolling.close_through(now, 2)
    middle = Trade("BTC", 2, 10 * 60_000 + 30_000, Decimal("10"), Decimal("1"))
    last_second = Trade("BTC", 3, 11 * 60_000 - 500, Decimal("10"), Decimal("1"))
    quiet = rolling.on_correction(None, middle, correction_id=1, kind="inserted", sequence=3)
    lost = rolling.on_correction(None, last_second, correction_id=2, kind="inserted", sequence=4)
    assert not any(isinstance(m, RevisionsLost) for m in quiet)
    assert [type(m) for m in lost][:1] == [RevisionsLost]


def test_an_old_first_trade_does_not_close_every_boundary_since() -> None:
    """A state with no trade yet, the clock at 10 h: its first trade is two hours old (a
    backfill). The next tick closes the boundaries after the clock's, not a horizon's worth
    from the trade on (3,600 at a 1 s step: a new subscriber cut off as a slow reader)."""
    hour = 3_600_000
    now = 10 * hour
    rolling = RollingWindow("BTC", window_ms=60_000, step_ms=1_000, retention_ms=hour)
    rolling.take_closed_through(now)
    rolling.on_correction(
        None,
        Trade("BTC", 1, now - 2 * hour, Decimal("10"), Decimal("1")),
        correction_id=1,
        kind="inserted",
        sequence=1,
    )
    out = rolling.close_through(now + 2_500, 2)
    closed = [m.point.end_ms for m in out if isinstance(m, Update) and m.closed]
    assert closed == [now + 1_000, now + 2_000]


@pytest.mark.parametrize("loaded_empty", [True, False])
def test_a_live_trade_arriving_after_the_grace_still_gets_its_closed_point(
    loaded_empty: bool,
) -> None:
    """Subscribed at T (the clock at T - 2 s grace), a trade stamped T + 200 ms is delivered
    3 s later, after the clock passed its boundary: the point at T + 1 s holding it is still
    sent, whether the state was loaded with a trade or empty (found by review: an empty state
    took the clock's boundary as history and skipped it for good)."""
    t0 = 1_000_000
    trades = [] if loaded_empty else [Trade("BTC", 1, t0 - 50_000, Decimal("9"), Decimal("1"))]
    rolling = RollingWindow(
        "BTC", window_ms=60_000, step_ms=1_000, retention_ms=3_600_000, trades=trades
    )
    rolling.take_closed_through(t0 - 2_000)
    rolling.close_through(t0 - 1_500, 1)
    rolling.close_through(t0 + 1_200, 2)  # the tick before the trade arrives
    out = rolling.on_trade(Trade("BTC", 2, t0 + 200, Decimal("10"), Decimal("1")), 3)
    out += rolling.close_through(t0 + 5_000, 4)
    sent = {m.point.end_ms: m.point for m in out if isinstance(m, Update) and m.closed}
    sent |= {m.new.end_ms: m.new for m in out if isinstance(m, Revision)}
    assert t0 + 1_000 in sent
    assert sent[t0 + 1_000].sums.notional == (Decimal(10) if loaded_empty else Decimal(19))


def test_points_are_verified_only_up_to_the_watermark() -> None:
    """Points ending at or before verified_until say verified; later ones do not."""
    rolling = RollingWindow("BTC", window_ms=10, step_ms=5, retention_ms=1000, verified_until_ms=20)
    out = rolling.on_trade(Trade("BTC", 1, 12, Decimal("10"), Decimal("1")), 1)
    out += rolling.on_trade(Trade("BTC", 2, 27, Decimal("11"), Decimal("1")), 2)
    flags = {m.point.end_ms: m.point.verified for m in out if isinstance(m, Update)}
    assert flags == {13: True, 15: True, 20: True, 25: False, 28: False}


def test_a_verified_window_at_the_watermark_moves_it() -> None:
    """A verified window starting at or before the watermark extends it; a later one does not."""
    rolling = RollingWindow("BTC", window_ms=10, step_ms=5, retention_ms=1000, verified_until_ms=20)
    rolling.on_window_verified(40, 50)
    assert rolling.verified_until_ms == 20
    rolling.on_window_verified(20, 30)
    assert rolling.verified_until_ms == 30
    out = rolling.on_trade(Trade("BTC", 1, 28, Decimal("10"), Decimal("1")), 1)
    live = [m.point for m in out if isinstance(m, Update) and not m.closed]
    assert [p.verified for p in live] == [True]


def test_the_announced_watermark_wins_over_the_window_order() -> None:
    """Windows verified out of order: the watermark each event carries is followed (never
    backwards), where the window alone would leave it stuck at the first hole."""
    rolling = RollingWindow("BTC", window_ms=10, step_ms=5, retention_ms=1000, verified_until_ms=0)
    for start, end, until in [(30, 40, 0), (0, 10, 10), (10, 20, 20), (20, 30, 40), (40, 50, 50)]:
        rolling.on_window_verified(start, end, until)
    assert rolling.verified_until_ms == 50
    rolling.on_window_verified(0, 10, 10)  # an older event replayed: no step back
    assert rolling.verified_until_ms == 50
    unknown = RollingWindow("BTC", window_ms=10, step_ms=5, retention_ms=1000)
    unknown.on_window_verified(0, 10, 10)
    assert unknown.verified_until_ms == 10


def test_points_starting_before_the_verified_range_are_not_verified() -> None:
    """History before the range's start (never reconciled) is not verified even below the
    watermark; a backfill moving the start back (its events say so) makes it verified."""
    rolling = RollingWindow(
        "BTC", window_ms=10, step_ms=5, retention_ms=1000, verified_until_ms=40, verified_from_ms=22
    )
    out = rolling.on_trade(Trade("BTC", 1, 29, Decimal("10"), Decimal("1")), 1)
    assert [m.point.verified for m in out if isinstance(m, Update) and not m.closed] == [False]
    rolling.on_window_verified(20, 30, 40, 22)  # the start stays
    assert rolling.verified_from_ms == 22
    rolling.on_window_verified(10, 20, 40, 10)  # a backfill reached it: moves back
    assert rolling.verified_from_ms == 10
    rolling.on_window_verified(30, 40, 40, 30)  # never forward
    assert rolling.verified_from_ms == 10
    later = rolling.on_trade(Trade("BTC", 2, 30, Decimal("11"), Decimal("1")), 2)
    assert [m.point.verified for m in later if isinstance(m, Update) and not m.closed] == [True]


def test_without_a_watermark_nothing_is_verified() -> None:
    """A symbol with no reconciliation position never reports verified points."""
    rolling = RollingWindow("BTC", window_ms=10, step_ms=5, retention_ms=1000)
    rolling.on_window_verified(0, 100)
    out = rolling.on_trade(Trade("BTC", 1, 12, Decimal("10"), Decimal("1")), 1)
    assert not any(m.point.verified for m in out if isinstance(m, Update))


def test_boundaries_close_on_the_clock_without_a_new_trade() -> None:
    """An idle symbol's step boundaries close when the clock passes them, once each."""
    rolling = RollingWindow("BTC", window_ms=10, step_ms=5, retention_ms=1000)
    rolling.on_trade(Trade("BTC", 1, 12, Decimal("10"), Decimal("2")), 1)
    out = rolling.close_through(23, 1)
    assert [(m.point.end_ms, m.point.sums.volume, m.closed) for m in out] == [
        (15, Decimal(2), True),
        (20, Decimal(2), True),
    ]
    assert rolling.close_through(24, 1) == []
    later = rolling.on_trade(Trade("BTC", 2, 26, Decimal("11"), Decimal("1")), 2)
    assert [m.point.end_ms for m in later if isinstance(m, Update) and m.closed] == [25]


def test_nothing_closes_before_the_first_trade() -> None:
    """Without any trade there is no point to close."""
    rolling = RollingWindow("BTC", window_ms=10, step_ms=5, retention_ms=1000)
    assert rolling.close_through(1_000, 0) == []


def test_live_points_keep_every_digit() -> None:
    """40-digit amounts: the live point's sums equal rational arithmetic exactly, after a
    trade joins and after another leaves the window."""
    price = Decimal("1.000000000000000000000000000000000000001")
    quantity = Decimal("3.000000000000000000000000000000000000007")
    rolling = RollingWindow("BTC", window_ms=10, step_ms=5, retention_ms=1000)
    rolling.on_trade(Trade("BTC", 1, 0, Decimal("1e25"), Decimal("1e5")), 1)
    rolling.on_trade(Trade("BTC", 2, 9, price, quantity), 2)
    both = rolling.live_point()
    assert both is not None
    assert Fraction(both.sums.notional) == Fraction(10**30) + Fraction(price) * Fraction(quantity)
    rolling.on_trade(Trade("BTC", 3, 11, price, quantity), 3)  # the first trade leaves
    later = rolling.live_point()
    assert later is not None
    assert Fraction(later.sums.notional) == 2 * Fraction(price) * Fraction(quantity)
    assert Fraction(later.sums.volume) == 2 * Fraction(quantity)


def _closed(messages: list[Revision | Update]) -> list[int]:
    return [m.point.end_ms for m in messages if isinstance(m, Update) and m.closed]


def test_a_late_trade_after_the_clock_closed_past_it_closes_nothing_again() -> None:
    """The clock closed an idle symbol's boundaries; a trade older than the last of them but
    newer than the symbol's newest trade (a late feed trade, a REST insert) revises them and
    the next tick or trade closes only new boundaries."""
    rolling = RollingWindow("BTC", window_ms=300, step_ms=60, retention_ms=3_600)
    rolling.on_trade(Trade("BTC", 1, 10, Decimal("10"), Decimal("1")), 1)
    assert _closed(rolling.close_through(600, 2)) == list(range(60, 601, 60))
    late = rolling.on_correction(
        None,
        Trade("BTC", 2, 30, Decimal("12"), Decimal("1")),
        correction_id=1,
        kind="inserted",
        sequence=3,
    )
    assert _closed(late) == []
    assert [m.old.end_ms for m in late if isinstance(m, Revision)] == [60, 120, 180, 240, 300]
    assert _closed(rolling.close_through(660, 4)) == [660]
    assert _closed(rolling.on_trade(Trade("BTC", 3, 650, Decimal("9"), Decimal("1")), 5)) == []
    assert _closed(rolling.on_trade(Trade("BTC", 4, 725, Decimal("9"), Decimal("1")), 6)) == [720]


def test_closed_points_stay_on_the_step_grid_after_a_long_idle_gap() -> None:
    """After an idle gap longer than the revision horizon (which the step does not divide),
    the boundaries closed by the clock and by the next trade are still multiples of the
    step, and the oldest is within the horizon."""
    step, horizon = 7, 1_000
    rolling = RollingWindow("BTC", window_ms=30, step_ms=step, retention_ms=horizon)
    rolling.on_trade(Trade("BTC", 1, 5, Decimal("10"), Decimal("1")), 1)
    by_clock = _closed(rolling.close_through(5_000, 2))
    by_trade = _closed(rolling.on_trade(Trade("BTC", 2, 9_000, Decimal("10"), Decimal("1")), 3))
    for ends, latest in ((by_clock, 5_000 - 5_000 % step), (by_trade, 9_000 - 9_000 % step)):
        assert ends
        assert all(e % step == 0 for e in ends)
        assert ends[-1] == latest
        assert latest - horizon <= ends[0] < latest - horizon + step
