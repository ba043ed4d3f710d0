"""The shared send turns of StreamVwap streams: a cap on writes in flight, one line served
first come first served, a stuck write losing its turn, and how a stream ends (asserted by
counts and order; the writes are futures the test completes)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import grpc
import pytest

from vwap.outbox import CLOSED, FAILED, OVERFLOWED, STALLED, Outbox, Outlet


async def _settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


class Wire:
    """Records every write as (stream, message); a held stream's write waits for its gate."""

    def __init__(self) -> None:
        self.started: list[tuple[str, bytes]] = []
        self.written: list[tuple[str, bytes]] = []
        self.gates: dict[tuple[str, bytes], asyncio.Future[None]] = {}
        self.hold: set[str] = set()
        self.progress = asyncio.Event()

    def writer(self, name: str) -> Callable[[bytes], Coroutine[Any, Any, None]]:
        """The write function of stream ``name`` (held streams wait for their gate)."""

        async def write(message: bytes) -> None:
            self.started.append((name, message))
            self.progress.set()
            if name in self.hold:
                gate = asyncio.get_running_loop().create_future()
                self.gates[name, message] = gate
                await gate
            self.written.append((name, message))
            self.progress.set()

        return write


async def test_no_more_writes_than_turns_are_in_flight() -> None:
    """With 3 turns and 10 stuck-free but slow streams, 3 writes are in flight at a time and
    the streams are served in the order they joined the line."""
    outbox = Outbox(turns=3, stuck_after_s=3600)
    wire = Wire()
    names = [f"s{n}" for n in range(10)]
    wire.hold = set(names)
    outlets = {name: Outlet(max_pending=100) for name in names}
    async with asyncio.TaskGroup() as tasks:
        serving = [tasks.create_task(outbox.serve(outlets[n], wire.writer(n))) for n in names]
        await _settle()
        for name in names:
            outlets[name].offer(name.encode())
            outlets[name].offer(None)
        await _settle()
        assert [s for s, _ in wire.started] == ["s0", "s1", "s2"]
        assert (outbox.in_flight, outbox.waiting) == (3, 7)
        for name in names:
            wire.gates[name, name.encode()].set_result(None)
            await _settle()
            assert outbox.in_flight <= 3
    assert [s for s, _ in wire.started] == names
    assert [s.result() for s in serving] == [CLOSED] * 10
    await outbox.aclose()


async def test_each_turn_sends_one_message_then_the_stream_goes_to_the_back() -> None:
    """Two streams with three closed points each alternate, each in its own order."""
    outbox = Outbox(turns=1, stuck_after_s=3600)
    wire = Wire()
    a, b = Outlet(max_pending=100), Outlet(max_pending=100)
    for n in range(3):
        a.offer(b"a%d" % n)
        b.offer(b"b%d" % n)
    a.offer(None)
    b.offer(None)
    async with asyncio.TaskGroup() as tasks:
        done_a = tasks.create_task(outbox.serve(a, wire.writer("a")))
        done_b = tasks.create_task(outbox.serve(b, wire.writer("b")))
    assert [m for _, m in wire.written] == [b"a0", b"b0", b"a1", b"b1", b"a2", b"b2"]
    assert (done_a.result(), done_b.result()) == (CLOSED, CLOSED)


async def test_a_stuck_write_loses_its_turn_and_the_others_are_all_served() -> None:
    """One turn, one client that never reads: the other 20 streams all get their messages
    while it is stuck; it keeps its queue (conflated to the newest live point) and gets it
    once its write completes."""
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
    outbox = Outbox(turns=1, stuck_after_s=0.01)
    wire = Wire()
    wire.hold = {"stuck"}
    stuck = Outlet(max_pending=100)
    others = {f"s{n}": Outlet(max_pending=100) for n in range(20)}
    async with asyncio.TaskGroup() as tasks:
        stuck_done = tasks.create_task(outbox.serve(stuck, wire.writer("stuck")))
        stuck.offer(b"live-1", "BTC")
        await _settle()
        assert wire.started == [("stuck", b"live-1")]
        for n, (name, outlet) in enumerate(others.items()):
            tasks.create_task(outbox.serve(outlet, wire.writer(name)))
            outlet.offer(b"%d" % n)
            outlet.offer(None)
        stuck.offer(b"live-2", "BTC")
        stuck.offer(b"live-3", "BTC")
        while len(wire.written) < 20:
            wire.progress.clear()
            await wire.progress.wait()
        assert [s for s, _ in wire.written] == list(others)
        assert outbox.revoked == 1
        wire.hold.clear()
        wire.gates["stuck", b"live-1"].set_result(None)
        stuck.offer(None)
    assert [m for s, m in wire.written if s == "stuck"] == [b"live-1", b"live-3"]
    assert stuck_done.result() == CLOSED
    assert errors == []


async def test_no_more_stuck_writes_than_turns_are_set_aside() -> None:
    """When the replacement's write gets stuck too (every write is slow), it keeps its turn:
    stuck writes never pile up beyond the turns, and the line moves on once one completes."""
    outbox = Outbox(turns=1, stuck_after_s=0.01)
    wire = Wire()
    wire.hold = {"a", "b"}
    outlets = {name: Outlet(max_pending=10) for name in ("a", "b", "c")}
    async with asyncio.TaskGroup() as tasks:
        for name, outlet in outlets.items():
            tasks.create_task(outbox.serve(outlet, wire.writer(name)))
        await _settle()
        for outlet in outlets.values():
            outlet.offer(b"x")
        while len(wire.started) < 2:
            wire.progress.clear()
            await wire.progress.wait()
        for _ in range(5):  # several expiry periods pass
            await asyncio.sleep(0.01)
        assert [s for s, _ in wire.started] == ["a", "b"]
        assert outbox.revoked == 1
        assert wire.written == []
        wire.gates["a", b"x"].set_result(None)
        await _settle()
        assert [s for s, _ in wire.written] == ["a"]  # b still holds the only turn
        wire.gates["b", b"x"].set_result(None)
        for outlet in outlets.values():
            outlet.offer(None)
    assert [s for s, _ in wire.written] == ["a", "b", "c"]
    assert outbox.revoked == 1


async def test_a_stream_ends_overflowed_or_failed() -> None:
    """Too many pending messages end a stream as overflowed; a gRPC error from a write ends
    it as failed without stopping the other streams."""
    outbox = Outbox(turns=1, stuck_after_s=3600)
    wire = Wire()
    flood = Outlet(max_pending=2)
    for n in range(3):
        flood.offer(b"%d" % n)

    async def broken(message: bytes) -> None:
        raise grpc.aio.UsageError("the call is over")

    gone, fine = Outlet(max_pending=10), Outlet(max_pending=10)
    gone.offer(b"x")
    fine.offer(b"y")
    fine.offer(None)
    async with asyncio.TaskGroup() as tasks:
        flooded = tasks.create_task(outbox.serve(flood, wire.writer("flood")))
        failed = tasks.create_task(outbox.serve(gone, broken))
        closed = tasks.create_task(outbox.serve(fine, wire.writer("fine")))
    assert (flooded.result(), failed.result(), closed.result()) == (OVERFLOWED, FAILED, CLOSED)
    assert wire.written == [("fine", b"y")]


async def test_a_crashed_sender_ends_its_stream_and_is_raised_at_close() -> None:
    """A bug in a write (not a gRPC error) ends that stream, lets the others be served, and
    is raised by aclose instead of being lost with its task."""
    outbox = Outbox(turns=1, stuck_after_s=3600)
    wire = Wire()

    async def buggy(message: bytes) -> None:
        raise RuntimeError("a bug")

    bad, fine = Outlet(max_pending=10), Outlet(max_pending=10)
    bad.offer(b"x")
    fine.offer(b"y")
    fine.offer(None)
    async with asyncio.TaskGroup() as tasks:
        crashed = tasks.create_task(outbox.serve(bad, buggy))
        closed = tasks.create_task(outbox.serve(fine, wire.writer("fine")))
    assert (crashed.result(), closed.result()) == (FAILED, CLOSED)
    assert wire.written == [("fine", b"y")]
    with pytest.raises(ExceptionGroup) as caught:
        await outbox.aclose()
    assert [str(e) for e in caught.value.exceptions] == ["a bug"]
    await outbox.aclose()  # raised once


def test_at_least_one_turn() -> None:
    """Zero turns would block every stream forever."""
    with pytest.raises(ValueError, match="turns"):
        Outbox(turns=0)


async def test_a_stuck_stream_that_overflows_ends_at_once_and_gives_up_its_turn() -> None:
    """A client that stopped reading (its write never completes) while its closed points pile
    up past max_pending: its stream ends overflowed at once, its queue is dropped, later offers
    are ignored, and the only turn passes to the next stream."""
    outbox = Outbox(turns=1, stuck_after_s=3600, stalled_after_s=3600)
    wire = Wire()
    wire.hold = {"stuck"}
    stuck, fine = Outlet(max_pending=3), Outlet(max_pending=10)
    async with asyncio.TaskGroup() as tasks:
        stuck_done = tasks.create_task(outbox.serve(stuck, wire.writer("stuck")))
        stuck.offer(b"first")
        await _settle()
        assert wire.started == [("stuck", b"first")]
        fine_done = tasks.create_task(outbox.serve(fine, wire.writer("fine")))
        fine.offer(b"y")
        fine.offer(None)
        for n in range(4):
            stuck.offer(b"closed-%d" % n)
        assert await asyncio.wait_for(stuck_done, timeout=10) == OVERFLOWED
        assert len(stuck.pending) == 0
        stuck.offer(b"later")
        assert len(stuck.pending) == 0
        assert await asyncio.wait_for(fine_done, timeout=10) == CLOSED
        assert wire.written == [("fine", b"y")]
    assert outbox.cut_offs == 1
    await outbox.aclose()  # cancels the write that never completes


async def test_writes_stalled_beyond_the_cap_end_their_streams_and_the_line_moves_on() -> None:
    """More stuck writes than the cap allows (one set aside, one holding the only turn, both
    never completing): once in flight stalled_after_s each of their streams ends stalled with
    its queue dropped, and the stream waiting behind them is served."""
    outbox = Outbox(turns=1, stuck_after_s=0.01, stalled_after_s=0.2)
    wire = Wire()
    wire.hold = {"a", "b"}
    outlets = {name: Outlet(max_pending=10) for name in ("a", "b", "c")}
    async with asyncio.TaskGroup() as tasks:
        serving = {
            n: tasks.create_task(outbox.serve(o, wire.writer(n))) for n, o in outlets.items()
        }
        await _settle()
        for outlet in outlets.values():
            outlet.offer(b"x")
        outlets["a"].offer(b"y")
        outlets["c"].offer(None)
        done, _ = await asyncio.wait(serving.values(), timeout=10)
        assert len(done) == 3
    assert {n: s.result() for n, s in serving.items()} == {"a": STALLED, "b": STALLED, "c": CLOSED}
    assert [s for s, _ in wire.started] == ["a", "b", "c"]
    assert wire.written == [("c", b"x")]
    assert len(outlets["a"].pending) == len(outlets["b"].pending) == 0
    # a set aside, then (a's stream ended, so under the cap again) b: c got the turn
    assert (outbox.revoked, outbox.cut_offs) == (2, 2)
    await outbox.aclose()  # cancels the two writes that never complete
