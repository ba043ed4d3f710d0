"""StreamVwap against a fake processor: live and closed points, exact revisions, resume."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf.duration_pb2 import Duration
from trading.v1 import events_pb2, vwap_pb2, vwap_pb2_grpc

from processor.event_log import NewEvent
from tests.vwap.support import FakeProcessor, VwapStarter
from tradekit.domain import Trade
from tradekit.grpc_server import Keepalive
from tradekit.tasks import cancel_and_wait
from tradekit.wire import duration_from_ms, ms_from_timestamp, timestamp_from_ms, trade_to_proto
from vwap.outbox import Outbox
from vwap.ranges import DAY_MS
from vwap.service import wall_clock_ms
from vwap.servicer import VwapServicer, registration

BASE = 1_700_006_400_000 - 1_700_006_400_000 % DAY_MS
WINDOW = 60_000
STEP = 10_000


def _t(trade_id: int, offset: int, price: str, qty: str = "1") -> Trade:
    return Trade("BTC", trade_id, BASE + offset, Decimal(price), Decimal(qty))


def _sums(point: vwap_pb2.VwapPoint) -> tuple[Decimal, Decimal, int]:
    return Decimal(point.notional), Decimal(point.volume), point.trade_count


def _brute(truth: dict[int, Trade], point: vwap_pb2.VwapPoint) -> tuple[Decimal, Decimal, int]:
    end = ms_from_timestamp(point.end_time, field="end_time")
    inside = [t for t in truth.values() if end - WINDOW <= t.ts_ms < end]
    return (
        sum((t.notional for t in inside), Decimal(0)),
        sum((t.quantity for t in inside), Decimal(0)),
        len(inside),
    )


def _btc_request() -> vwap_pb2.StreamVwapRequest:
    return vwap_pb2.StreamVwapRequest(
        symbols=["BTC"], window=duration_from_ms(WINDOW), step=duration_from_ms(STEP)
    )


def _verified_flags(
    messages: list[vwap_pb2.StreamVwapResponse], *, live_only: bool = False
) -> list[tuple[int, bool]]:
    """(end time - BASE, verified) of each update (live ones only if asked)."""
    return [
        (ms_from_timestamp(m.update.point.end_time, field="end") - BASE, m.update.point.verified)
        for m in messages
        if m.HasField("update") and not (live_only and m.update.closed)
    ]


def _is_live(msg: vwap_pb2.StreamVwapResponse) -> bool:
    return msg.HasField("update") and not msg.update.closed


async def _until(condition: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s * 100)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never {what}")


async def _until_loaded(running: Any) -> None:
    await _until(
        lambda: running.hub.is_loaded("BTC", window_ms=WINDOW, step_ms=STEP), "loaded live state"
    )


@asynccontextmanager
async def _served(running: Any, outbox: Outbox) -> AsyncIterator[str]:
    """A second gRPC server for ``running``'s VWAP service whose StreamVwap sends through
    ``outbox``; its address."""
    server = grpc.aio.server()
    registration(VwapServicer(running.service, running.hub, outbox=outbox)).add_to_server(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


async def _status_at_end(call: Any) -> grpc.aio.AioRpcError:
    """Read ``call`` until it fails; its error."""
    try:
        while True:
            if await asyncio.wait_for(call.read(), timeout=10) is grpc.aio.EOF:
                raise AssertionError("the stream ended without an error")
    except grpc.aio.AioRpcError as exc:
        return exc


async def _read_until(call: Any, last_seq: int) -> list[vwap_pb2.StreamVwapResponse]:
    out: list[vwap_pb2.StreamVwapResponse] = []
    while True:
        msg = await asyncio.wait_for(call.read(), timeout=10)
        assert msg is not grpc.aio.EOF
        out.append(msg)
        if msg.HasField("update") and not msg.update.closed and msg.update.sequence == last_seq:
            return out


async def test_stream_revisions_and_resume_after_processor_restart(
    start_vwap: VwapStarter, processor: FakeProcessor
) -> None:
    """Each stream starts from the current value; each correction revises every affected
    closed point exactly once with exact values; after the processor restarts the follower
    resumes at the next sequence, missing nothing (live points caught up in a burst may
    conflate; closed points and revisions never do)."""
    truth: dict[int, Trade] = {}
    history: dict[int, dict[int, Trade]] = {}
    for trade in (_t(1, 1_000, "100"), _t(2, 5_000, "102", "2")):
        stored = await processor.trade(trade)
        truth[trade.trade_id] = trade
        history[stored.sequence] = dict(truth)
    request = _btc_request()
    async with start_vwap() as (running, stub):
        first, second = stub.StreamVwap(request), stub.StreamVwap(request)
        await _until_loaded(running)
        assert running.hub.tracker_count == 1

        async def trade(t: Trade) -> int:
            event = await processor.trade(t)
            truth[t.trade_id] = t
            history[event.sequence] = dict(truth)
            return event.sequence

        async def correct(kind: str, old: Trade | None, new: Trade | None) -> int:
            event = await processor.correct(kind, old, new)
            if old is not None:
                del truth[old.trade_id]
            if new is not None:
                truth[new.trade_id] = new
            history[event.sequence] = dict(truth)
            return event.sequence

        await trade(_t(3, 15_000, "104"))
        await trade(_t(4, 25_000, "99.5", "0.5"))
        await trade(_t(5, 32_000, "101"))
        fix_seq = await correct("updated", _t(2, 5_000, "102", "2"), _t(2, 5_000, "103", "2"))
        messages = await _read_until(first, fix_seq)

        await processor.stop()
        await trade(_t(6, 41_000, "105"))
        delete_seq = await correct("deleted", _t(3, 15_000, "104"), None)
        await processor.start()
        last_seq = await trade(_t(7, 52_000, "98", "3"))
        messages += await _read_until(first, last_seq)
        others = await _read_until(second, last_seq)
        assert [m for m in others if not _is_live(m)] == [m for m in messages if not _is_live(m)]
        assert others[-1] == messages[-1]
        first.cancel()
        second.cancel()

    live = [m.update.sequence for m in messages if _is_live(m)]
    assert live == sorted(set(live))
    assert set(live) <= set(range(2, last_seq + 1))
    assert live[-1] == last_seq
    closed: dict[int, tuple[Decimal, Decimal, int]] = {}
    revised: dict[int, list[int]] = {}
    for msg in messages:
        if msg.HasField("update"):
            assert _sums(msg.update.point) == _brute(history[msg.update.sequence], msg.update.point)
            if msg.update.closed:
                end = ms_from_timestamp(msg.update.point.end_time, field="end")
                assert end not in closed
                closed[end] = _sums(msg.update.point)
        else:
            rev = msg.revision
            end = ms_from_timestamp(rev.old_point.end_time, field="end")
            assert _sums(rev.old_point) == closed[end]
            assert _sums(rev.new_point) == _brute(history[rev.sequence], rev.new_point)
            closed[end] = _sums(rev.new_point)
            revised.setdefault(rev.sequence, []).append(end - BASE)
    assert sorted(closed) == [BASE + k * STEP for k in range(1, 6)]
    assert revised == {fix_seq: [10_000, 20_000, 30_000], delete_seq: [20_000, 30_000, 40_000]}
    fix = next(m.revision for m in messages if m.HasField("revision"))
    assert fix.reason.startswith("correction ")
    assert fix.reason.endswith("updated BTC trade 2")
    assert processor.requests[0] == 3
    assert set(processor.requests[1:]) == {delete_seq - 1}
    assert (running.follower.gaps, running.follower.duplicates) == (0, 0)
    assert running.follower.last_sequence == last_seq


async def test_subscription_snapshot_neither_misses_nor_repeats(
    start_vwap: VwapStarter, processor: FakeProcessor
) -> None:
    """An event committed before the subscription's snapshot but streamed after it is counted
    once (from the snapshot: the stream's first value, at the snapshot's sequence) and not
    re-applied; later events are applied on top."""
    await processor.trade(_t(1, 1_000, "100"))
    request = _btc_request()
    async with start_vwap() as (running, stub):
        held = await processor.trade(_t(2, 2_000, "200"), release=False)
        call = stub.StreamVwap(request)
        await _until_loaded(running)
        await processor.release([held])
        last = await processor.trade(_t(3, 3_000, "300"))
        messages = await _read_until(call, last.sequence)
        call.cancel()
    *first, final = messages
    # The current value (conflated away if the next one came before it was sent).
    assert [(m.update.sequence, _sums(m.update.point)) for m in first] in (
        [],
        [(held.sequence, (Decimal(300), Decimal(2), 2))],
    )
    assert (final.update.sequence, _sums(final.update.point)) == (
        last.sequence,
        (Decimal(600), Decimal(3), 3),
    )


async def test_a_subscriber_leaving_while_another_loads_the_state_is_detached(
    start_vwap: VwapStarter, processor: FakeProcessor, store_url: str
) -> None:
    """The second subscriber to a state leaves while the first is still loading it (the trades
    table is locked meanwhile): it is detached at once, and when the first leaves too no state
    is kept (it used to stay attached, receiving every later update, forever)."""
    await processor.trade(_t(1, 1_000, "100"))
    async with start_vwap() as (running, stub):
        hub = running.hub
        locker = await psycopg.AsyncConnection.connect(store_url)
        async with locker, locker.transaction():
            await locker.execute("LOCK TABLE trades IN ACCESS EXCLUSIVE MODE")
            first, second = stub.StreamVwap(_btc_request()), stub.StreamVwap(_btc_request())
            await _until(lambda: hub.attachment_count == 2, "both attached")
            second.cancel()
            await _until(lambda: hub.attachment_count == 1, "the leaver detached")
            assert not hub.is_loaded("BTC", window_ms=WINDOW, step_ms=STEP)
        await _until_loaded(running)
        first.cancel()
        await _until(lambda: hub.tracker_count == 0, "the state released")
        assert hub.attachment_count == 0


async def test_a_subscriber_joining_a_followed_symbol_starts_from_its_current_value(
    start_vwap: VwapStarter, processor: FakeProcessor
) -> None:
    """A stream joining state another stream already follows gets the current live point
    first (it used to wait, silent, for the next trade), equal to the other stream's latest."""
    await processor.trade(_t(1, 1_000, "100"))
    async with start_vwap() as (running, stub):
        early = stub.StreamVwap(_btc_request())
        await _until_loaded(running)
        second = await processor.trade(_t(2, 2_000, "200", "3"))
        latest = (await _read_until(early, second.sequence))[-1].update
        late = stub.StreamVwap(_btc_request())
        joined = (await asyncio.wait_for(late.read(), timeout=10)).update
        assert running.hub.tracker_count == 1
        early.cancel()
        late.cancel()
    assert not joined.closed
    assert joined.sequence == second.sequence
    assert joined.point == latest.point
    assert _sums(joined.point) == (Decimal(700), Decimal(4), 2)


async def test_all_symbols_stream_picks_up_a_new_symbol(
    start_vwap: VwapStarter, processor: FakeProcessor
) -> None:
    """With no symbols requested, a symbol first traded after subscribing is followed too."""
    await processor.trade(_t(1, 1_000, "100"))
    request = vwap_pb2.StreamVwapRequest(
        window=duration_from_ms(WINDOW), step=duration_from_ms(STEP)
    )
    async with start_vwap() as (running, stub):
        call = stub.StreamVwap(request)
        await _until_loaded(running)
        await processor.trade(Trade("ETH", 1, BASE + 1_000, Decimal("10"), Decimal("1")))
        for _ in range(500):
            if running.hub.is_loaded("ETH", window_ms=WINDOW, step_ms=STEP):
                break
            await asyncio.sleep(0.01)
        eth = await processor.trade(Trade("ETH", 2, BASE + 2_000, Decimal("20"), Decimal("1")))
        btc = await processor.trade(_t(2, 2_000, "300"))
        messages = await _read_until(call, btc.sequence)
        call.cancel()
    updates = {(m.update.point.symbol, m.update.sequence): m.update.point for m in messages}
    assert _sums(updates["ETH", eth.sequence]) == (Decimal(30), Decimal(2), 2)
    assert _sums(updates["BTC", btc.sequence]) == (Decimal(400), Decimal(2), 2)


async def test_live_and_closed_points_say_whether_they_are_verified(
    start_vwap: VwapStarter, processor: FakeProcessor
) -> None:
    """Points ending at or before the verified watermark are verified; a verified window
    event moves the watermark for the points that follow, and announces the verified range
    (the closed points inside it are final)."""
    await processor.verify("BTC", BASE, BASE + 10_000)
    request = _btc_request()
    async with start_vwap() as (running, stub):
        call = stub.StreamVwap(request)
        await _until_loaded(running)
        first = await processor.trade(_t(1, 1_000, "100"))
        messages = await _read_until(call, first.sequence)
        later = await processor.trade(_t(2, 25_000, "110"))
        messages += await _read_until(call, later.sequence)
        verified = await processor.verify("BTC", BASE + 10_000, BASE + 30_000)
        last = await processor.trade(_t(3, 26_000, "120"))
        messages += await _read_until(call, last.sequence)
        call.cancel()
    assert _verified_flags(messages) == [
        (1_001, True),
        (10_000, True),
        (20_000, False),
        (25_001, False),
        (26_001, True),
    ]
    ranges = [m.verified for m in messages if m.HasField("verified")]
    assert [
        (r.symbol, ms_from_timestamp(r.verified_until, field="until") - BASE, r.sequence)
        for r in ranges
    ] == [("BTC", 30_000, verified.sequence)]
    # From the first trade (no verified_from) to 30 s: the closed point sent unverified (end
    # 20 s) lies in the announced range, so the client knows it final now.
    assert not ranges[0].HasField("verified_from")


async def test_windows_verified_out_of_order_move_the_watermark_as_announced(
    start_vwap: VwapStarter, processor: FakeProcessor
) -> None:
    """A later window verified first leaves the watermark; the one closing the hole moves it
    past both (the event says where): live points after that are verified."""
    await processor.verify("BTC", BASE, BASE + 10_000)
    request = _btc_request()
    async with start_vwap() as (running, stub):
        call = stub.StreamVwap(request)
        await _until_loaded(running)
        first = await processor.trade(_t(1, 25_000, "100"))
        messages = await _read_until(call, first.sequence)
        await processor.verify("BTC", BASE + 20_000, BASE + 30_000, until_ms=BASE + 10_000)
        await processor.verify("BTC", BASE + 10_000, BASE + 20_000, until_ms=BASE + 30_000)
        last = await processor.trade(_t(2, 26_000, "120"))
        messages += await _read_until(call, last.sequence)
        call.cancel()
    assert _verified_flags(messages, live_only=True) == [(25_001, False), (26_001, True)]


async def test_an_idle_symbol_gets_its_closed_point_on_the_clock(
    start_vwap: VwapStarter, processor: FakeProcessor
) -> None:
    """With no later trade, a step boundary still closes shortly after it passes."""
    step = 1_000
    now = wall_clock_ms()
    request = vwap_pb2.StreamVwapRequest(
        symbols=["BTC"], window=duration_from_ms(WINDOW), step=duration_from_ms(step)
    )
    async with start_vwap(close_on_clock=True, close_grace_ms=100) as (running, stub):
        call = stub.StreamVwap(request)
        for _ in range(500):
            if running.hub.is_loaded("BTC", window_ms=WINDOW, step_ms=step):
                break
            await asyncio.sleep(0.01)
        trade = Trade("BTC", 1, now, Decimal("100"), Decimal("2"))
        await processor.trade(trade)
        boundary = now - now % step + step
        closed = None
        while closed is None:
            msg = await asyncio.wait_for(call.read(), timeout=10)
            if msg.HasField("update") and msg.update.closed:
                closed = msg.update.point
        call.cancel()
    assert ms_from_timestamp(closed.end_time, field="end") == boundary
    assert _sums(closed) == (Decimal(200), Decimal(2), 1)


async def test_a_new_stream_of_an_idle_symbol_starts_its_closed_points_now(
    start_vwap: VwapStarter, processor: FakeProcessor
) -> None:
    """A symbol last traded two hours ago, streamed with a 1 s step: the closed points start
    at the boundaries passing after the subscription, not at the newest trade (the first clock
    tick used to close a revision horizon of them at once, 3,600 per symbol, which cut a
    subscriber of a few idle symbols off as a slow reader before it could read any)."""
    step = 1_000
    idle_since = wall_clock_ms() - 2 * 3_600_000
    await processor.trade(Trade("BTC", 1, idle_since, Decimal("100"), Decimal("2")))
    request = vwap_pb2.StreamVwapRequest(
        symbols=["BTC"], window=duration_from_ms(WINDOW), step=duration_from_ms(step)
    )
    async with start_vwap(close_on_clock=True, close_grace_ms=100) as (_, stub):
        subscribed = wall_clock_ms()
        call = stub.StreamVwap(request)
        first = await asyncio.wait_for(call.read(), timeout=10)
        closed: list[int] = []
        while len(closed) < 2:
            msg = await asyncio.wait_for(call.read(), timeout=10)
            assert msg.HasField("update")
            assert msg.update.closed
            closed.append(ms_from_timestamp(msg.update.point.end_time, field="end"))
        call.cancel()
    assert not first.update.closed
    assert _sums(first.update.point) == (Decimal(200), Decimal(2), 1)
    assert closed[0] > subscribed - 2 * step  # not from the idle hours
    assert closed[1] == closed[0] + step


async def test_an_all_symbols_stream_leaving_while_a_new_symbol_loads_keeps_no_state(
    start_vwap: VwapStarter, processor: FakeProcessor, store_url: str
) -> None:
    """An all-symbols stream leaves while the symbol discovery loads the state of a symbol
    first traded after it subscribed (the trades table locked meanwhile): once the load ends,
    no state is kept (it used to stay attached to the stream gone, for ever, applying every
    event and holding its trades against VWAP_LIVE_MAX_TRADES)."""
    await processor.trade(_t(1, 1_000, "100"))
    request = vwap_pb2.StreamVwapRequest(
        window=duration_from_ms(WINDOW), step=duration_from_ms(STEP)
    )
    async with start_vwap() as (running, stub):
        hub = running.hub
        call = stub.StreamVwap(request)
        await _until_loaded(running)
        eth = Trade("ETH", 1, BASE + 1_000, Decimal("10"), Decimal("1"))
        event = await processor.trade(eth, release=False)
        locker = await psycopg.AsyncConnection.connect(store_url)
        async with locker, locker.transaction():
            await locker.execute("LOCK TABLE trades IN ACCESS EXCLUSIVE MODE")
            await processor.release([event])
            await _until(lambda: hub.attachment_count == 2, "ETH being attached")
            call.cancel()
            await _until(lambda: hub.attachment_count == 1, "BTC detached")
        await _until(lambda: hub.tracker_count == 0, "no state kept")
        assert not hub.is_loaded("ETH", window_ms=WINDOW, step_ms=STEP)


async def test_closed_points_of_a_snapshot_ahead_of_the_follower_keep_sequences_increasing(
    start_vwap: VwapStarter, processor: FakeProcessor
) -> None:
    """A stream's state is read from the store while an event is committed but not yet
    followed: its first point reflects that event, and the closed points the clock makes next
    carry at least its sequence (they used to carry the follower's older position: sequences
    went back, and a client dropping repeated sequences dropped real closed points)."""
    step = 1_000
    now = wall_clock_ms()
    await processor.trade(Trade("BTC", 1, now - 500, Decimal("100"), Decimal("1")))
    request = vwap_pb2.StreamVwapRequest(
        symbols=["BTC"], window=duration_from_ms(WINDOW), step=duration_from_ms(step)
    )
    async with start_vwap(close_on_clock=True, close_grace_ms=100) as (running, stub):
        await _until(lambda: running.hub.sequence == 1, "the first event followed")
        ahead = await processor.trade(
            Trade("BTC", 2, now, Decimal("300"), Decimal("1")), release=False
        )
        call = stub.StreamVwap(request)
        first = (await asyncio.wait_for(call.read(), timeout=10)).update
        closed = None
        while closed is None:
            msg = await asyncio.wait_for(call.read(), timeout=10)
            if msg.HasField("update") and msg.update.closed:
                closed = msg.update
        call.cancel()
        await processor.release([ahead])
    assert (first.closed, first.sequence) == (False, ahead.sequence)
    assert _sums(first.point) == (Decimal(400), Decimal(2), 2)
    assert closed.sequence >= ahead.sequence
    assert _sums(closed.point) == (Decimal(400), Decimal(2), 2)


async def test_a_correction_past_the_revision_horizon_ends_the_stream_with_the_reason(
    start_vwap: VwapStarter, processor: FakeProcessor
) -> None:
    """Closed points were sent for trade 1's time, then trading went on past the revision
    horizon (30 s here): a correction of trade 1 can no longer be revised on the stream, so
    the stream ends UNAVAILABLE saying why and what to do (it used to go on without a
    revision, and a later VwapVerified declared the stale points final)."""
    await processor.trade(_t(1, 1_000, "100"))
    async with start_vwap(revision_horizon_ms=30_000) as (running, stub):
        call = stub.StreamVwap(_btc_request())
        await _until_loaded(running)
        await processor.trade(_t(2, 15_000, "101"))
        recent = await processor.trade(_t(3, 120_000, "102"))
        await _read_until(call, recent.sequence)
        await processor.correct("updated", _t(1, 1_000, "100"), _t(1, 1_000, "90"))
        ended = await _status_at_end(call)
        await _until(lambda: running.hub.tracker_count == 0, "the state dropped")
    assert ended.code() == grpc.StatusCode.UNAVAILABLE
    details = ended.details() or ""
    assert "correction" in details
    assert "VWAP_REVISION_HORIZON" in details
    assert "GetVwapSeries" in details


async def test_a_stream_open_when_the_service_stops_ends_unavailable(
    start_vwap: VwapStarter, processor: FakeProcessor
) -> None:
    """A graceful stop ends open streams UNAVAILABLE saying to subscribe again: a client
    reconnects (to another instance, or once it is back). It used to end them with OK, which
    reads as the end of the data."""
    await processor.trade(_t(1, 1_000, "100"))
    async with start_vwap() as (running, _):
        channel = grpc.aio.insecure_channel(running.address)
        call = vwap_pb2_grpc.VwapServiceStub(channel).StreamVwap(  # type: ignore[no-untyped-call]
            _btc_request()
        )
        first = await asyncio.wait_for(call.read(), timeout=10)
    async with channel:
        ended = await _status_at_end(call)
    assert _is_live(first)
    assert ended.code() == grpc.StatusCode.UNAVAILABLE
    assert "the VWAP service is stopping; subscribe again" in (ended.details() or "")


async def test_a_stuck_subscriber_does_not_hold_back_the_others(
    start_vwap: VwapStarter, processor: FakeProcessor
) -> None:
    """With a single send turn, a client that never reads (its flow-control window fills)
    loses the turn when its write gets stuck: the other subscribers still receive the newest
    point of every trade, exactly, and the stuck stream is served again once it reads."""
    outbox = Outbox(turns=1, stuck_after_s=0.05)
    request = _btc_request()
    # No window growth and the smallest window: a few unread messages block the writes.
    tight = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1)]
    async with (
        start_vwap() as (running, _),
        _served(running, outbox) as address,
        grpc.aio.insecure_channel(address, options=tight) as stuck_channel,
        grpc.aio.insecure_channel(address) as channel,
    ):
        stuck = vwap_pb2_grpc.VwapServiceStub(stuck_channel).StreamVwap(request)  # type: ignore[no-untyped-call]
        stub = vwap_pb2_grpc.VwapServiceStub(channel)  # type: ignore[no-untyped-call]
        healthy = [stub.StreamVwap(request) for _ in range(3)]
        await _until_loaded(running)
        while running.hub.tracker_count != 1 or outbox.revoked == 0:
            last = await processor.trade(_t(1 + len(processor.events), 1_000, "100.5"))
            if len(processor.events) > 2_000:
                break
        last = await processor.trade(_t(10_000, 2_000, "99.25", "3"))
        received = [await _read_until(call, last.sequence) for call in healthy]
        caught_up = await _read_until(stuck, last.sequence)
        for call in (stuck, *healthy):
            call.cancel()
    assert outbox.revoked >= 1
    trades = len(processor.events)
    expected = (
        Decimal("100.5") * (trades - 1) + Decimal("99.25") * 3,
        Decimal(trades - 1 + 3),
        trades,
    )
    for messages in (*received, caught_up):
        live = [m.update for m in messages if _is_live(m)]
        assert [u.sequence for u in live] == sorted({u.sequence for u in live})
        assert live[-1].sequence == last.sequence
        assert _sums(live[-1].point) == expected


async def test_a_bad_subscription_is_refused_with_what_to_change(start_vwap: VwapStarter) -> None:
    """A step under a second (a closed point per millisecond to every subscriber), a window or
    step over a day (the live state holds that much history; the largest steps used to fail
    as UNAVAILABLE or UNKNOWN), a zero window or a malformed symbol: INVALID_ARGUMENT naming
    the field, before any message."""
    day = 86_400_000
    requests = {
        "step must be at least 1000 ms": vwap_pb2.StreamVwapRequest(step=duration_from_ms(999)),
        "step must be at most 86400000 ms": vwap_pb2.StreamVwapRequest(
            step=duration_from_ms(day + 1)
        ),
        f"got {10**17 * 1000} ms": vwap_pb2.StreamVwapRequest(step=Duration(seconds=10**17)),
        "window must be at most 86400000 ms": vwap_pb2.StreamVwapRequest(
            window=duration_from_ms(day + 1)
        ),
        # Past the service's largest window too: still the stream's own bound (advice to
        # shorten it to the service's 31 days used to come first, then this refusal).
        "window must be at most 86400000 ms (1 day) on StreamVwap": vwap_pb2.StreamVwapRequest(
            window=duration_from_ms(40 * day)
        ),
        "window must be positive": vwap_pb2.StreamVwapRequest(window=duration_from_ms(0)),
        "upper-case": vwap_pb2.StreamVwapRequest(symbols=["btc"]),
    }
    async with start_vwap() as (_, stub):
        for message, request in requests.items():
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.StreamVwap(request).read()
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert message in str(caught.value.details())
        accepted = stub.StreamVwap(
            vwap_pb2.StreamVwapRequest(window=duration_from_ms(day), step=duration_from_ms(day))
        )
        with pytest.raises(asyncio.TimeoutError):  # subscribed: waits for trades
            await asyncio.wait_for(accepted.read(), 0.5)
        accepted.cancel()


async def test_an_event_the_service_cannot_apply_ends_streams_and_drops_cached_points(
    start_vwap: VwapStarter, processor: FakeProcessor
) -> None:
    """A correction whose event cannot be decoded (here: a price out of range) changed a closed
    window the service has cached and a live window it follows: the cached point is dropped
    (the next read has the new value) and the stream ends with UNAVAILABLE saying to subscribe
    again; the new subscription starts from the store's state."""
    old = _t(1, 1_000, "100")
    await processor.trade(old)
    async with start_vwap() as (running, stub):
        request = vwap_pb2.GetVwapRequest(
            symbol="BTC",
            end_time=timestamp_from_ms(BASE + WINDOW),
            window=duration_from_ms(WINDOW),
        )
        first = await stub.GetVwap(request)
        assert (await stub.GetVwap(request)).point == first.point
        assert running.service.cache.hits == 1
        call = stub.StreamVwap(_btc_request())
        await _until_loaded(running)
        new = _t(1, 1_000, "200")
        bad = events_pb2.CorrectionEvent(
            kind=events_pb2.CORRECTION_KIND_UPDATED, correction_id=7, old_trade=trade_to_proto(old)
        )
        bad.new_trade.CopyFrom(trade_to_proto(new))
        bad.new_trade.price = "1E+99"

        async def change(conn: Any) -> None:
            await conn.execute("UPDATE trades SET price = 200 WHERE trade_id = 1")

        event = await processor.commit(
            change,
            NewEvent(
                "BTC", "trading.correction.BTC", bad.DESCRIPTOR.full_name, bad.SerializeToString()
            ),
        )
        await processor.release([event])
        ended = await _status_at_end(call)
        assert ended.code() == grpc.StatusCode.UNAVAILABLE
        assert "subscribe again" in str(ended.details())
        after = await stub.GetVwap(request)
        assert after.point.notional == "200"
        again = stub.StreamVwap(_btc_request())
        current = (await asyncio.wait_for(again.read(), timeout=10)).update
        assert (current.point.notional, current.point.trade_count) == ("200", 1)
        await processor.trade(_t(2, 2_000, "300"))
        update = (await asyncio.wait_for(again.read(), timeout=10)).update
        assert (update.point.notional, update.point.trade_count) == ("500", 2)
        again.cancel()


async def _replaced(
    processor: FakeProcessor, keep: int, trades: list[Trade]
) -> list[events_pb2.Event]:
    """Stop ``processor``, replace its log by its first ``keep`` events grown by ``trades``
    (published at later instants than the old log's events), start it again; the new events."""
    await processor.stop()
    await processor.replace_log(keep=keep)
    await asyncio.sleep(0.01)
    grown = [await processor.trade(trade) for trade in trades]
    await processor.start()
    return grown


async def test_a_replaced_event_log_drops_what_was_derived_and_follows_its_end(
    start_vwap: VwapStarter, processor: FakeProcessor
) -> None:
    """The processor comes back on a database restored from an older backup: its log ends
    before the service's position. The resume is refused OUT_OF_RANGE naming the log's end;
    the service ends its streams and drops its cached points (they may hold trades the
    restored store lacks) and follows the new log from its end: new streams and reads equal
    the restored store plus what came after, with no event of the new log skipped."""
    await processor.trade(_t(1, 1_000, "100"))
    async with start_vwap() as (running, stub):
        request = vwap_pb2.GetVwapRequest(
            symbol="BTC", end_time=timestamp_from_ms(BASE + WINDOW), window=duration_from_ms(WINDOW)
        )
        call = stub.StreamVwap(_btc_request())
        await _until_loaded(running)
        lost = await processor.trade(_t(2, 2_000, "300"))
        await running.follower.wait_for(lost.sequence)
        cached = await stub.GetVwap(request)
        await processor.stop()
        await processor.replace_log(keep=1)
        await processor.start()
        ended = await _status_at_end(call)
        await _until(lambda: processor.requests[-1:] == [2], "resumed at the new log's end")
        again = stub.StreamVwap(_btc_request())
        current = (await asyncio.wait_for(again.read(), timeout=10)).update
        new = await processor.trade(_t(3, 3_000, "50"))  # sequence 2 of the new log
        update = (await asyncio.wait_for(again.read(), timeout=10)).update
        again.cancel()
        after = await stub.GetVwap(request)
    assert (cached.point.notional, cached.point.trade_count) == ("400", 2)
    assert ended.code() == grpc.StatusCode.UNAVAILABLE
    assert "event log does not continue from the events applied here (newest event 1, 2" in str(
        ended.details()
    )
    assert processor.requests[-2:] == [3, 2]  # refused past the end, then from the end
    assert (current.point.notional, current.point.trade_count) == ("100", 1)
    assert new.sequence == lost.sequence == 2
    assert (update.sequence, update.point.notional, update.point.trade_count) == (2, "150", 2)
    assert (after.point.notional, after.point.trade_count) == ("150", 2)
    assert running.follower.last_sequence == 2


async def test_a_replaced_event_log_grown_past_the_position_is_noticed(
    start_vwap: VwapStarter, processor: FakeProcessor
) -> None:
    """The restored log has already grown past the service's position when it reconnects:
    the publish time it quotes for its last event differs from the new log's event there, so
    the resume is refused all the same and the service rebuilds from the store; it used to go
    on from its old position, skipping the new log's events before it and keeping the lost
    trade in its state."""
    await processor.trade(_t(1, 1_000, "100"))
    async with start_vwap() as (running, stub):
        call = stub.StreamVwap(_btc_request())
        await _until_loaded(running)
        lost = await processor.trade(_t(2, 2_000, "300"))
        await running.follower.wait_for(lost.sequence)
        grown = await _replaced(processor, 1, [_t(3, 3_000, "50"), _t(4, 4_000, "10")])
        ended = await _status_at_end(call)
        await _until(lambda: processor.requests[-1:] == [4], "resumed at the new log's end")
        again = stub.StreamVwap(_btc_request())
        current = (await asyncio.wait_for(again.read(), timeout=10)).update
        again.cancel()
    assert [e.sequence for e in grown] == [2, 3]
    assert grown[0].publish_time != lost.publish_time
    assert ended.code() == grpc.StatusCode.UNAVAILABLE
    assert "(newest event 3, 2 applied here)" in str(ended.details())
    assert processor.requests[-2:] == [3, 4]  # refused at the old position, then the end
    assert (current.point.notional, current.point.trade_count) == ("160", 3)


async def test_a_log_replaced_twice_before_an_event_arrived_is_noticed(
    start_vwap: VwapStarter, processor: FakeProcessor
) -> None:
    """The log is replaced, the service rebuilds and resumes after the new log's newest event;
    before any event arrives the log is replaced again and grows past that position. The
    refusal named the newest event's publish time, and the service quotes it on resuming, so
    the second replacement is noticed too; it used to quote nothing then and resume at its
    position, skipping the third log's first event and keeping the trade that log lacks."""
    await processor.trade(_t(1, 1_000, "100"))
    async with start_vwap() as (running, stub):
        await running.follower.wait_for((await processor.trade(_t(2, 2_000, "300"))).sequence)
        await processor.stop()
        await processor.replace_log(keep=1)
        await processor.start()
        await _until(lambda: processor.requests[-2:] == [3, 2], "resumed at the new log's end")
        gaps = running.follower.gaps
        grown = await _replaced(processor, 0, [_t(3, 3_000, "50"), _t(4, 4_000, "10")])
        await _until(lambda: processor.requests[-1:] == [3], "resumed at the third log's end")
        again = stub.StreamVwap(_btc_request())
        current = (await asyncio.wait_for(again.read(), timeout=10)).update
        again.cancel()
    assert [e.sequence for e in grown] == [1, 2]
    assert processor.requests[-2:] == [2, 3]  # refused at the old position, then the end
    assert running.follower.gaps == gaps + 1
    assert (current.point.notional, current.point.trade_count) == ("60", 2)


async def test_a_log_replaced_before_any_event_arrived_is_noticed(
    start_vwap: VwapStarter, processor: FakeProcessor
) -> None:
    """The service started at the log's head and received nothing since; the log is replaced
    and grows past that head. The publish time read with the head at start is quoted on
    resuming, so the replacement is noticed and the cached point holding the lost trade is
    dropped (the new log's event inside it would otherwise be skipped, and a trade outside it
    would not invalidate it)."""
    await processor.trade(_t(1, 1_000, "100"))
    await processor.trade(_t(2, 2_000, "300"))
    request = vwap_pb2.GetVwapRequest(
        symbol="BTC", end_time=timestamp_from_ms(BASE + WINDOW), window=duration_from_ms(WINDOW)
    )
    async with start_vwap() as (running, stub):
        cached = await stub.GetVwap(request)
        assert (await stub.GetVwap(request)).point == cached.point
        hits = running.service.cache.hits
        # one trade inside the cached window, one outside it
        await _replaced(processor, 1, [_t(3, 3_000, "50"), _t(4, WINDOW + 5_000, "10")])
        await _until(lambda: processor.requests[-1:] == [4], "resumed at the new log's end")
        after = await stub.GetVwap(request)
    assert hits == 1
    assert (cached.point.notional, cached.point.trade_count) == ("400", 2)
    assert processor.requests[-2:] == [3, 4]
    assert (after.point.notional, after.point.trade_count) == ("150", 2)


async def test_a_day_long_stream_spans_24_hours_in_a_dst_time_zone(
    start_vwap: VwapStarter, processor: FakeProcessor, store_url: str
) -> None:
    """The service's database sessions in a zone with daylight saving time (the server's
    default, or PGTZ): a stream with a one-day window over the day the clocks change starts
    from the same trades as GetVwap. Its start read asked for the trades within a day as an
    interval with a days part, a calendar day there (23 hours that day), and left the first
    trade out of the live point and every closed point, for good."""
    dst_day = 1_710_028_800_000  # 2024-03-10T00:00:00Z; New York moves to EDT at 07:00Z
    for trade_id, offset, price in ((1, 30 * 60_000, "100"), (2, 12 * 3_600_000, "200")):
        await processor.trade(Trade("BTC", trade_id, dst_day + offset, Decimal(price), Decimal(1)))
    await processor.trade(Trade("BTC", 3, dst_day + DAY_MS, Decimal("300"), Decimal(1)))
    day = duration_from_ms(DAY_MS)
    zoned = f"{store_url} options='-c TimeZone=America/New_York'"
    async with start_vwap(database_url=zoned, cache_size=0) as (_, stub):
        call = stub.StreamVwap(
            vwap_pb2.StreamVwapRequest(symbols=["BTC"], window=day, step=duration_from_ms(60_000))
        )
        live = (await asyncio.wait_for(call.read(), timeout=10)).update.point
        call.cancel()
        read = await stub.GetVwap(
            vwap_pb2.GetVwapRequest(symbol="BTC", end_time=live.end_time, window=day)
        )
    assert ms_from_timestamp(live.end_time, field="end_time") == dst_day + DAY_MS + 1
    assert (live.trade_count, live.notional) == (3, "600")
    assert (read.point.trade_count, read.point.notional) == (3, "600")


async def test_every_rpc_writes_a_window_in_the_same_text(
    start_vwap: VwapStarter, processor: FakeProcessor
) -> None:
    """The same window read by GetVwap, GetVwapSeries and StreamVwap reads the same strings:
    canonical decimals (no trailing zeros). Sums computed from the aggregates, as differences
    of prefix sums and as a running total carry different scales (a trade outside the window
    with 30 decimal places gave the series' notional 60 of them), equal in value only."""
    tiny = Decimal("0.000000000000000000000000000001")
    await processor.trade(Trade("BTC", 1, BASE, tiny, tiny))
    await processor.trade(Trade("BTC", 2, BASE + 1_000, Decimal("2.50"), Decimal("3")))
    second = duration_from_ms(1_000)
    end = timestamp_from_ms(BASE + 2_000)
    async with start_vwap(cache_size=0) as (_, stub):
        request = vwap_pb2.GetVwapRequest(symbol="BTC", end_time=end, window=second)
        read = await stub.GetVwap(request)
        series = [
            response.point
            async for response in stub.GetVwapSeries(
                vwap_pb2.GetVwapSeriesRequest(
                    symbol="BTC",
                    start_time=timestamp_from_ms(BASE + 1_000),
                    end_time=end,
                    step=second,
                    window=second,
                )
            )
        ]
        call = stub.StreamVwap(
            vwap_pb2.StreamVwapRequest(symbols=["BTC"], window=second, step=second)
        )
        live = (await asyncio.wait_for(call.read(), timeout=10)).update.point
        call.cancel()
    # each window holds the second trade only (the live one ends after it)
    assert [ms_from_timestamp(p.end_time, field="end") for p in (read.point, series[-1], live)] == [
        BASE + 2_000,
        BASE + 2_000,
        BASE + 1_001,
    ]
    texts = {(p.notional, p.volume, p.vwap, p.trade_count) for p in (read.point, series[-1], live)}
    assert texts == {("7.5", "3", "2.5", 1)}


async def test_a_live_state_past_the_memory_limit_is_refused_with_the_reason(
    start_vwap: VwapStarter, processor: FakeProcessor
) -> None:
    """Live states hold their window's trades in memory. A stream needing a new one that
    would take them past VWAP_LIVE_MAX_TRADES is refused RESOURCE_EXHAUSTED saying what to
    do; a stream sharing a loaded state is not, nor is the same request once memory is
    freed. Every distinct (window, step) used to load its own copy without a bound."""
    for i in range(3):
        await processor.trade(_t(i + 1, 1_000 * (i + 1), "100"))
    other = vwap_pb2.StreamVwapRequest(
        symbols=["BTC"], window=duration_from_ms(WINDOW - 1), step=duration_from_ms(STEP)
    )
    async with start_vwap(live_max_trades=5) as (running, stub):
        first = stub.StreamVwap(_btc_request())
        held = (await asyncio.wait_for(first.read(), timeout=10)).update.point
        shared = stub.StreamVwap(_btc_request())
        also = (await asyncio.wait_for(shared.read(), timeout=10)).update.point
        refused = await _status_at_end(stub.StreamVwap(other))
        trackers = running.hub.tracker_count
        first.cancel()
        shared.cancel()
        await _until(lambda: running.hub.tracker_count == 0, "freed the live state")
        later = stub.StreamVwap(other)
        point = (await asyncio.wait_for(later.read(), timeout=10)).update.point
        later.cancel()
    assert (held.trade_count, also.trade_count, point.trade_count) == (3, 3, 3)
    assert trackers == 1
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = refused.details() or ""
    assert "would hold 6 trades in memory, over this service's VWAP_LIVE_MAX_TRADES (5)" in details
    assert "subscribe with a window and step already streamed" in details


async def test_an_all_symbols_stream_that_cannot_follow_a_new_symbol_is_ended(
    start_vwap: VwapStarter, processor: FakeProcessor
) -> None:
    """A stream of all symbols whose next new symbol would take the live states past
    VWAP_LIVE_MAX_TRADES is ended (subscribe again; the new subscription is then refused with
    the reason) instead of silently missing that symbol."""
    for i in range(3):
        await processor.trade(_t(i + 1, 1_000 * (i + 1), "100"))
    everything = vwap_pb2.StreamVwapRequest(
        window=duration_from_ms(WINDOW), step=duration_from_ms(STEP)
    )
    async with start_vwap(live_max_trades=3) as (_, stub):
        call = stub.StreamVwap(everything)
        first = (await asyncio.wait_for(call.read(), timeout=10)).update.point
        await processor.trade(Trade("ETH", 9, BASE + 4_000, Decimal(5), Decimal(1)))
        ended = await _status_at_end(call)
        again = await _status_at_end(stub.StreamVwap(everything))
    assert (first.symbol, first.trade_count) == ("BTC", 3)
    assert ended.code() == grpc.StatusCode.UNAVAILABLE
    assert "VWAP_LIVE_MAX_TRADES (3)" in (ended.details() or "")
    assert again.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_readers_stalled_beyond_the_cap_are_ended_and_the_others_still_served(
    start_vwap: VwapStarter, processor: FakeProcessor
) -> None:
    """With one send turn, three clients that never read (each on its own channel with a
    tiny flow-control window: more than the stuck writes one turn sets aside) do not stop
    StreamVwap for everyone: each stalled stream is ended once a write waited stalled_after_s,
    its subscription freed, and a fresh subscriber then receives the newest point; a stalled
    client that reads again gets RESOURCE_EXHAUSTED saying it read too slowly. The service's
    own server, with the bounds from its settings (VWAP_STREAM_STALLED_AFTER)."""
    request = _btc_request()
    tight = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1)]
    async with (
        start_vwap(stream_send_turns=1, stream_stuck_after_ms=50, stream_stalled_after_ms=500) as (
            running,
            _,
        ),
        grpc.aio.insecure_channel(running.address, options=tight) as one,
        grpc.aio.insecure_channel(running.address, options=tight) as two,
        grpc.aio.insecure_channel(running.address, options=tight) as three,
        grpc.aio.insecure_channel(running.address) as channel,
    ):
        stalled = [
            vwap_pb2_grpc.VwapServiceStub(c).StreamVwap(request)  # type: ignore[no-untyped-call]
            for c in (one, two, three)
        ]
        await _until(lambda: running.hub.attachment_count == 3, "subscribed 3 readers")
        # Trades until every stalled stream has been ended (their writes get stuck).
        while running.hub.attachment_count > 0 and len(processor.events) < 3_000:
            await processor.trade(_t(1 + len(processor.events), 1_000, "100.5"))
            await asyncio.sleep(0.005)
        await _until(
            lambda: running.hub.attachment_count == 0, "ended the stalled streams", timeout_s=30
        )
        stub = vwap_pb2_grpc.VwapServiceStub(channel)  # type: ignore[no-untyped-call]
        fresh = stub.StreamVwap(request)
        await _until(lambda: running.hub.attachment_count == 1, "subscribed a reader")
        last = await processor.trade(_t(100_000, 2_000, "99.25", "3"))
        received = await _read_until(fresh, last.sequence)
        ended = [await _status_at_end(call) for call in stalled]
        fresh.cancel()
        assert running.outbox.cut_offs == 3
    assert _sums([m for m in received if _is_live(m)][-1].update.point)[2] == len(processor.events)
    for error in ended:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "read too slowly" in (error.details() or "")


class _Relay:
    """A TCP relay to ``port`` that can freeze like a stopped client process: from then on it
    moves no byte either way (the server's pings go unanswered, its window never reopens)."""

    def __init__(self, port: int) -> None:
        self._target = port
        self._moving = asyncio.Event()
        self._moving.set()
        self._pumps: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> _Relay:
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for pump in list(self._pumps):
            await cancel_and_wait(pump)
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    def freeze(self) -> None:
        self._moving.clear()

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        self._writers += [writer, up_writer]
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            pump = asyncio.get_running_loop().create_task(self._pump(source, sink))
            self._pumps.add(pump)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while data := await source.read(65536):
            await self._moving.wait()
            sink.write(data)
            await sink.drain()
        sink.close()


async def test_a_client_that_stops_answering_is_disconnected_and_its_stream_freed(
    start_vwap: VwapStarter, processor: FakeProcessor
) -> None:
    """A StreamVwap client whose process stops (a relay that freezes: nothing it sends or
    receives moves any more) is found by the server's keepalive ping: its connection is
    closed, its subscription freed and the write waiting on it ends. The service's own
    server, with the keepalive of its settings (GRPC_KEEPALIVE, GRPC_KEEPALIVE_TIMEOUT)."""
    tight = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)]
    async with start_vwap(
        stream_send_turns=1,
        stream_stuck_after_ms=50,
        keepalive=Keepalive(interval_s=0.2, timeout_s=0.5),
    ) as (running, _):
        outbox = running.outbox
        port = int(running.address.rpartition(":")[2])
        async with (
            _Relay(port) as relay,
            grpc.aio.insecure_channel(f"127.0.0.1:{relay.port}", options=tight) as channel,
        ):
            call = vwap_pb2_grpc.VwapServiceStub(channel).StreamVwap(_btc_request())  # type: ignore[no-untyped-call]
            first = await processor.trade(_t(1, 1_000, "100"))
            await _read_until(call, first.sequence)
            relay.freeze()
            for n in range(2, 200):
                await processor.trade(_t(n, 1_000, "100"))
            await _until(
                lambda: running.hub.attachment_count == 0 and outbox.in_flight == 0,
                "freed the stopped client's stream",
                timeout_s=30,
            )
            call.cancel()
