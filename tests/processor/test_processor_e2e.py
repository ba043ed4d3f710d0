"""The processor end to end, against the real simulator, proxy, PostgreSQL and NATS: the store
converges exactly to the ground truth, events are gap-free and resumable, NATS has no duplicate."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2
from trading.v1 import events_pb2, processor_pb2, processor_pb2_grpc

from processor.app import RunningProcessor, run_processor
from tests.outages import database_away, wait_for_health
from tests.processor.support import (
    WINDOW_MS,
    Provider,
    assert_nats_holds_each_event_once,
    assert_store_equals_truth,
    delete_stream,
    hostile_provider,
    processor_config,
    processor_env,
    stream_name,
    verified_until,
    wait_verified_past,
)
from tradekit.wire import (
    NEWEST_SEQUENCE_KEY,
    ms_from_timestamp,
    newest_from_metadata,
    timestamp_from_ms,
)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclasses.dataclass
class Stack:
    """The running parts of one scenario."""

    provider: Provider
    processor: RunningProcessor
    database_url: str
    nats_url: str
    stream: str


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[Stack]:
    """Simulator (hostile WebSocket, fast but failing REST), proxy and processor."""
    stream = stream_name()
    async with hostile_provider(seed=7) as provider:
        env = processor_env(provider, database_url=database_url, nats_url=nats_url, stream=stream)
        try:
            async with run_processor(processor_config(env)) as processor:
                yield Stack(provider, processor, database_url, nats_url, stream)
        finally:
            await delete_stream(nats_url, stream)


async def test_store_converges_exactly_to_the_ground_truth(stack: Stack) -> None:
    """After the settle delay and reconciliation, verified windows equal the truth exactly."""
    await asyncio.sleep(8)
    first = min((await verified_until(stack.database_url)).values())
    target = first + 3 * WINDOW_MS
    await wait_verified_past(stack.database_url, target, timeout_s=60)
    assert await assert_store_equals_truth(stack.provider, stack.database_url, first, target) > 0
    async with await psycopg.AsyncConnection.connect(stack.database_url) as conn:
        cur = await conn.execute("SELECT count(*) FROM quarantine")
        row = await cur.fetchone()
    assert row is not None
    assert row[0] > 0
    assert stack.processor.counters.frames_quarantined == row[0]


async def _collect(
    stub: processor_pb2_grpc.ProcessorServiceStub,
    from_seq: int,
    n: int,
    *,
    last_publish_time: Timestamp | None = None,
) -> list[events_pb2.Event]:
    events = []
    call = stub.StreamEvents(
        processor_pb2.StreamEventsRequest(
            from_sequence=from_seq, last_publish_time=last_publish_time
        )
    )
    async for response in call:
        events.append(response.event)
        if len(events) == n:
            call.cancel()
            break
    return events


async def test_stream_events_resumes_without_gap_or_duplicate(stack: Stack) -> None:
    """A client that disconnects and resumes from its last sequence gets every event once."""
    await asyncio.sleep(3)
    async with grpc.aio.insecure_channel(stack.processor.address) as channel:
        stub = processor_pb2_grpc.ProcessorServiceStub(channel)
        first = await _collect(stub, 1, 40)
        second = await _collect(stub, first[-1].sequence + 1, 200)
    sequences = [e.sequence for e in first + second]
    assert sequences == list(range(1, len(sequences) + 1))
    assert all(e.WhichOneof("payload") for e in first + second)


async def test_stream_events_filters_by_symbol(stack: Stack) -> None:
    """A symbol filter delivers only that symbol's events, still in sequence order."""
    await asyncio.sleep(3)
    async with grpc.aio.insecure_channel(stack.processor.address) as channel:
        stub = processor_pb2_grpc.ProcessorServiceStub(channel)
        call = stub.StreamEvents(processor_pb2.StreamEventsRequest(symbols=["ETH"]))
        events = []
        async for response in call:
            events.append(response.event)
            if len(events) == 30:
                call.cancel()
                break
    assert {e.symbol for e in events} == {"ETH"}
    assert [e.sequence for e in events] == sorted({e.sequence for e in events})


async def test_nats_holds_every_event_once(stack: Stack) -> None:
    """JetStream receives each logged event exactly once."""
    await asyncio.sleep(4)
    assert (
        await assert_nats_holds_each_event_once(stack.nats_url, stack.stream, stack.database_url)
        > 0
    )


async def test_coverage_and_backfill_need_both_times(stack: Stack) -> None:
    """An unset time is refused by name (it would otherwise read as 1970-01-01)."""
    t = timestamp_from_ms(1_700_000_000_000)
    async with grpc.aio.insecure_channel(stack.processor.address) as channel:
        stub = processor_pb2_grpc.ProcessorServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as no_start:
            await stub.GetCoverage(processor_pb2.GetCoverageRequest(symbol="BTC", end_time=t))
        with pytest.raises(grpc.aio.AioRpcError) as no_end:
            await stub.Backfill(processor_pb2.BackfillRequest(symbol="BTC", start_time=t)).read()
    for caught, field in ((no_start, "start_time"), (no_end, "end_time")):
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"{field} is required" in str(caught.value.details())


async def test_a_backfill_before_1970_is_refused_saying_why(stack: Stack) -> None:
    """A backfill starting before the epoch is INVALID_ARGUMENT naming start_time (it was the
    proxy's refusal passed on, with an internal repr of the window and its status name)."""
    request = processor_pb2.BackfillRequest(
        symbol="BTC", start_time=timestamp_from_ms(-120_000), end_time=timestamp_from_ms(60_000)
    )
    async with grpc.aio.insecure_channel(stack.processor.address) as channel:
        stub = processor_pb2_grpc.ProcessorServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Backfill(request).read()
    details = str(caught.value.details())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("start_time must not be before 1970-01-01T00:00:00Z")
    assert "TimeWindow" not in details


async def test_coverage_of_more_windows_than_one_answer_holds_is_refused(stack: Stack) -> None:
    """A year of coverage (hundreds of thousands of ledger windows, an answer over gRPC's 4 MB
    limit) is INVALID_ARGUMENT saying to split the range; an hour is answered."""
    end = 1_700_000_000_000
    # the reconciler's first turn makes the symbol's row (the answer's verified_until); the
    # processor serves before it, while the relay worker starts beside it
    await wait_verified_past(stack.database_url, 0, timeout_s=30)
    async with grpc.aio.insecure_channel(stack.processor.address) as channel:
        stub = processor_pb2_grpc.ProcessorServiceStub(channel)
        request = processor_pb2.GetCoverageRequest(
            symbol="BTC",
            start_time=timestamp_from_ms(end - 365 * 86_400_000),
            end_time=timestamp_from_ms(end),
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetCoverage(request)
        request.start_time.CopyFrom(timestamp_from_ms(end - 3_600_000))
        hour = await stub.GetCoverage(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "per request: split it" in str(caught.value.details())
    assert hour.HasField("verified_until")


async def test_coverage_of_a_symbol_never_reconciled_here_is_not_found(stack: Stack) -> None:
    """GetCoverage of a symbol outside SYMBOLS with no ledger is NOT_FOUND naming SYMBOLS
    (it used to answer a made-up 'live' window)."""
    t = 1_700_000_000_000
    request = processor_pb2.GetCoverageRequest(
        symbol="DOGE", start_time=timestamp_from_ms(t), end_time=timestamp_from_ms(t + 60_000)
    )
    async with grpc.aio.insecure_channel(stack.processor.address) as channel:
        stub = processor_pb2_grpc.ProcessorServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetCoverage(request)
        request.symbol = "BTC"
        known = await stub.GetCoverage(request)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "DOGE is not reconciled here (SYMBOLS: BTC" in str(caught.value.details())
    assert known.HasField("verified_until")
    assert known.HasField("verified_from")
    assert known.verified_from.ToMilliseconds() <= known.verified_until.ToMilliseconds()


async def test_stream_events_of_a_symbol_never_reconciled_here_is_not_found(stack: Stack) -> None:
    """A filter naming a symbol outside SYMBOLS that was never backfilled is NOT_FOUND naming
    it and SYMBOLS (it used to be an open stream that never delivers anything)."""
    async with grpc.aio.insecure_channel(stack.processor.address) as channel:
        stub = processor_pb2_grpc.ProcessorServiceStub(channel)
        call = stub.StreamEvents(processor_pb2.StreamEventsRequest(symbols=["BTC", "DOGE"]))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call.read()
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    details = caught.value.details() or ""
    assert "DOGE not ingested or reconciled here" in details
    assert "BTC," not in details.split("(")[0]
    assert "SYMBOLS: BTC" in details


async def test_stream_events_from_past_the_end_of_the_log_is_out_of_range(stack: Stack) -> None:
    """A from_sequence past the newest event + 1 (a position from another event log) is
    OUT_OF_RANGE naming the newest event (also in the trailing metadata); it used to wait
    silently and then skip every event before it. Resuming at the newest + 1 is a live
    stream."""
    await asyncio.sleep(1)
    async with await psycopg.AsyncConnection.connect(stack.database_url) as conn:
        row = await (await conn.execute("SELECT seq FROM event_head")).fetchone()
    assert row is not None
    head = int(row[0])
    asked = head + 1_000_000
    async with grpc.aio.insecure_channel(stack.processor.address) as channel:
        stub = processor_pb2_grpc.ProcessorServiceStub(channel)
        call = stub.StreamEvents(processor_pb2.StreamEventsRequest(from_sequence=asked))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call.read()
        named = newest_from_metadata(caught.value.trailing_metadata() or ())
        assert named is not None
        assert named[1] is not None
        newest_event = (await asyncio.wait_for(_collect(stub, named[0], 1), timeout=60))[0]
        live = await asyncio.wait_for(
            _collect(stub, named[0] + 1, 1, last_publish_time=timestamp_from_ms(named[1])),
            timeout=60,
        )
    assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
    details = caught.value.details() or ""
    match = re.fullmatch(
        rf"sequence {asked} is past the end of the event log \(newest event (\d+)\):"
        r" resume with at most (\d+); .*",
        details,
    )
    assert match is not None, details
    newest, at_most = int(match[1]), int(match[2])
    assert (NEWEST_SEQUENCE_KEY, str(newest)) in list(caught.value.trailing_metadata() or ())
    assert head <= newest < asked
    assert at_most == newest + 1
    # the newest event's publish time is named too: quoted, the resume after it is live
    assert named == (newest, ms_from_timestamp(newest_event.publish_time, field="t"))
    assert [e.sequence for e in live] == [newest + 1]


async def test_a_resume_quoting_another_publish_time_is_out_of_range(stack: Stack) -> None:
    """A client quoting, for the event before its position, the publish time it received
    resumes as usual; quoting another (its log was replaced and has grown past its position)
    is OUT_OF_RANGE naming that event and this log's newest; a malformed one is
    INVALID_ARGUMENT."""
    await asyncio.sleep(1)
    async with grpc.aio.insecure_channel(stack.processor.address) as channel:
        stub = processor_pb2_grpc.ProcessorServiceStub(channel)
        seen = await asyncio.wait_for(_collect(stub, 1, 3), timeout=60)
        quoted = seen[1].publish_time
        resumed = stub.StreamEvents(
            processor_pb2.StreamEventsRequest(from_sequence=3, last_publish_time=quoted)
        )
        first = await asyncio.wait_for(resumed.read(), timeout=60)
        resumed.cancel()
        other = timestamp_from_ms(ms_from_timestamp(quoted, field="t") + 1)
        refused = stub.StreamEvents(
            processor_pb2.StreamEventsRequest(from_sequence=3, last_publish_time=other)
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await refused.read()
        bad = processor_pb2.StreamEventsRequest(from_sequence=3)
        bad.last_publish_time.nanos = 1
        malformed = stub.StreamEvents(bad)
        with pytest.raises(grpc.aio.AioRpcError) as invalid:
            await malformed.read()
    assert first.event == seen[2]
    assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
    details = caught.value.details() or ""
    assert details.startswith("event 2 of this log was published ")
    assert "resume after this log's newest event" in details
    newest = [v for k, v in caught.value.trailing_metadata() or () if k == NEWEST_SEQUENCE_KEY]
    assert len(newest) == 1
    assert int(newest[0]) >= 3
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "last_publish_time" in (invalid.value.details() or "")


async def test_events_past_retention_go_and_a_position_under_them_is_out_of_range(
    stack: Stack,
) -> None:
    """The processor prunes its event log (EVENT_LOG_RETENTION, 7 days): once the relay has
    published events that are older, they go; StreamEvents from 0 then starts at the oldest
    event kept, and from a position under it is OUT_OF_RANGE saying so and naming the newest
    event in the trailing metadata (as for a replaced log: the VWAP service resynchronises);
    GetProcessorStats counts them in events_pruned."""
    async with await psycopg.AsyncConnection.connect(stack.database_url, autocommit=True) as conn:
        for _ in range(600):
            row = await (await conn.execute("SELECT published_seq FROM event_relay")).fetchone()
            assert row is not None
            if int(row[0]) >= 5:
                break
            await asyncio.sleep(0.1)
        published = int(row[0])
        await conn.execute(
            "UPDATE events SET created_at = created_at - INTERVAL '8 days' WHERE seq <= 4"
        )
    assert published >= 5
    await stack.processor.retention.prune()  # (its own turn may have pruned them already)
    async with grpc.aio.insecure_channel(stack.processor.address) as channel:
        stub = processor_pb2_grpc.ProcessorServiceStub(channel)
        oldest = await asyncio.wait_for(_collect(stub, 0, 1), timeout=60)
        refused = stub.StreamEvents(processor_pb2.StreamEventsRequest(from_sequence=2))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await refused.read()
        stats = await stub.GetProcessorStats(processor_pb2.GetProcessorStatsRequest())
    assert oldest[0].sequence == 5  # events 1-4 went, 5 and on stay
    assert stats.events_pruned == 4  # whichever turn deleted them
    assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
    details = caught.value.details() or ""
    assert details.startswith("events 2 to 4 are no longer in the event log"), details
    assert newest_from_metadata(caught.value.trailing_metadata() or ()) is not None


async def _read_until_error(
    call: grpc.aio.UnaryStreamCall[Any, Any], seen: list[int]
) -> grpc.StatusCode | None:
    """Read a StreamEvents ``call`` to its end, appending sequences to ``seen``; the status it
    ended with (None: it ended OK)."""
    try:
        while (response := await call.read()) is not grpc.aio.EOF:
            seen.append(response.event.sequence)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return None


async def test_a_database_outage_is_unavailable_with_where_to_resume(stack: Stack) -> None:
    """With the database away, StreamEvents ends with UNAVAILABLE naming the sequence to resume
    from and GetCoverage is UNAVAILABLE, each within seconds (they reached clients as UNKNOWN
    after the pool's 30 s), and health is NOT_SERVING; once the database is back, health is
    SERVING again and the resumed stream has no gap."""
    await asyncio.sleep(2)
    t = 1_700_000_000_000
    coverage = processor_pb2.GetCoverageRequest(
        symbol="BTC", start_time=timestamp_from_ms(t), end_time=timestamp_from_ms(t + 60_000)
    )
    async with grpc.aio.insecure_channel(stack.processor.address) as channel:
        stub = processor_pb2_grpc.ProcessorServiceStub(channel)
        call = stub.StreamEvents(processor_pb2.StreamEventsRequest(), timeout=90)
        seen = [(await call.read()).event.sequence]
        async with database_away(stack.database_url):
            ended = await _read_until_error(call, seen)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.GetCoverage(coverage, timeout=60)
            health_away = await wait_for_health(stack.processor.address, NOT_SERVING)
        health_back = await wait_for_health(stack.processor.address, SERVING)
        failed_resumes = []
        for _ in range(60):  # as a client does: UNAVAILABLE means try again
            try:
                resumed = await _collect(stub, seen[-1] + 1, 5)
                break
            except grpc.aio.AioRpcError as exc:
                failed_resumes.append(exc.code())
                await asyncio.sleep(0.5)
    assert ended == grpc.StatusCode.UNAVAILABLE
    assert await call.details() == (
        f"the trade store is unavailable; resume with from_sequence {seen[-1] + 1}"
    )
    assert seen == list(range(1, len(seen) + 1))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert refused.value.details() == "the trade store is unavailable; retry"
    assert set(failed_resumes) <= {grpc.StatusCode.UNAVAILABLE}
    assert [e.sequence for e in resumed] == list(range(seen[-1] + 1, seen[-1] + 6))
    assert (health_away, health_back) == (NOT_SERVING, SERVING)


async def test_bad_stream_request_is_invalid_argument(stack: Stack) -> None:
    """A malformed symbol filter is refused with a message naming the field."""
    async with grpc.aio.insecure_channel(stack.processor.address) as channel:
        stub = processor_pb2_grpc.ProcessorServiceStub(channel)
        call = stub.StreamEvents(processor_pb2.StreamEventsRequest(symbols=["btc"]))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call.read()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "symbol" in (caught.value.details() or "")
