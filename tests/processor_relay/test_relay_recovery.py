"""The NATS relay after a crash between publishing and recording its position: it publishes
exactly the events JetStream is missing, so the stream ends with every event once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import nats
import psycopg
import pytest
from nats.js.api import StreamConfig

from processor import relay as relay_module
from processor.db import Pool, open_pool
from processor.events import SEQUENCE_HEADER, STREAM_SUBJECTS
from processor.head_watch import HeadWatcher
from processor.relay import NatsRelay
from processor.schema import migrate
from processor.stats import ProcessorCounters
from tests.processor_relay.stream import append_trade_events, stream_sequences

EVENTS = 10


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    """A migrated database holding an event log of ten events."""
    await migrate(database_url, "plain")
    async with open_pool(database_url) as pool:
        await append_trade_events(pool, EVENTS, payload=b"")
        yield pool


async def _sequences_in_stream(nats_url: str, stream: str) -> list[int | None]:
    nc = await nats.connect(nats_url)
    try:
        return await stream_sequences(nc.jetstream(), stream)
    finally:
        await nc.close()


async def _crashed_at_5(
    js: Any, stream: str, database_url: str, messages: dict[int, bytes]
) -> None:
    """The state a relay crash leaves: ``stream`` holds ``messages`` (event sequence ->
    payload, as the relay publishes them) and the recorded position is 5."""
    await js.add_stream(StreamConfig(name=stream, subjects=[STREAM_SUBJECTS]))
    for seq, payload in messages.items():
        await js.publish(
            "trading.trade.BTC",
            payload,
            headers={"Nats-Msg-Id": f"evt-{seq}", SEQUENCE_HEADER: str(seq)},
        )
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("UPDATE event_relay SET published_seq = 5")


async def _run_relay(pool: Pool, database_url: str, nats_url: str, stream: str) -> None:
    async with (
        HeadWatcher(database_url) as watcher,
        NatsRelay(
            pool=pool,
            nats_url=nats_url,
            stream=stream,
            watcher=watcher,
            counters=ProcessorCounters(),
        ) as relay,
    ):
        for _ in range(200):
            if relay.published_seq >= EVENTS:
                break
            await asyncio.sleep(0.05)


async def test_restart_publishes_only_what_the_stream_is_missing(
    pool: Pool, database_url: str, nats_url: str, stream_name: str
) -> None:
    """Position recorded at 5, stream holding 1-10 without 7: the restart adds 7 only."""
    stream = stream_name
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        # The state a crash leaves: 6-10 published but not recorded, 7's publish never landed.
        await _crashed_at_5(
            js, stream, database_url, {s: b"" for s in range(1, EVENTS + 1) if s != 7}
        )

        await _run_relay(pool, database_url, nats_url, stream)

        seqs = await _sequences_in_stream(nats_url, stream)
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            cur = await conn.execute("SELECT published_seq FROM event_relay")
            row = await cur.fetchone()
    finally:
        await nc.close()
    assert sorted(seqs) == list(range(1, EVENTS + 1))
    assert seqs[-1] == 7
    assert row is not None
    assert row[0] == EVENTS


async def test_a_hole_in_the_stream_does_not_stop_the_relay(
    pool: Pool, database_url: str, nats_url: str, stream_name: str
) -> None:
    """A message deleted from the stream's tail is skipped when the relay restarts."""
    stream = stream_name
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        await _run_relay(pool, database_url, nats_url, stream)
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await conn.execute("UPDATE event_relay SET published_seq = 5")
        await js.delete_msg(stream, 9)

        await _run_relay(pool, database_url, nats_url, stream)

        seqs = await _sequences_in_stream(nats_url, stream)
    finally:
        await nc.close()
    assert seqs == [1, 2, 3, 4, 5, 6, 7, 8, 10]


async def test_a_stream_holding_another_log_s_events_is_refused(
    pool: Pool, database_url: str, nats_url: str, stream_name: str
) -> None:
    """The database was restored from a backup (position recorded at 5) and its new log has
    grown past the stream's tail: the stream's events 6-10 are not this log's (other
    payloads). The relay refuses the stream, naming the first such event, instead of taking
    them as published and leaving subscribers with the old log's events. Done as the error
    says, the stream gets this log's events, all of them, in order."""
    stream = stream_name
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        old = {s: b"" if s <= 8 else b"old log" for s in range(1, EVENTS + 1)}
        await _crashed_at_5(js, stream, database_url, old)
        with pytest.raises(relay_module.RelayError) as refused:
            await _run_relay(pool, database_url, nats_url, stream)
        # As the error says: delete the stream and reset the relay.
        await js.delete_stream(stream)
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await conn.execute("UPDATE event_relay SET published_seq = 0")
        await _run_relay(pool, database_url, nats_url, stream)
        seqs = await _sequences_in_stream(nats_url, stream)
        payloads = {(await js.get_msg(stream, s)).data or b"" for s in range(1, EVENTS + 1)}
    finally:
        await nc.close()
    assert str(refused.value).startswith(
        f"JetStream stream {stream} holds another event 9 than this database's event log"
    )
    assert "stop the processor, delete the stream, reset the relay" in str(refused.value)
    assert seqs == list(range(1, EVENTS + 1))
    assert payloads == {b""}  # this log's events


async def test_the_stream_tail_is_checked_against_the_database_head(
    pool: Pool, database_url: str, nats_url: str, stream_name: str
) -> None:
    """The stream holds 1-12 but the database's log ends at 10, while the head watcher still
    says 1,000 (after a restore it has not reconnected yet): the relay refuses the stream.
    Compared with the watcher's head, it recorded 12 as published, past its own log, and
    would never have published the new log's 11 and 12."""
    stream = stream_name
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        await _crashed_at_5(js, stream, database_url, {s: b"" for s in range(1, EVENTS + 3)})
        async with HeadWatcher(database_url) as watcher:
            await watcher.advance(1_000)
            relay = NatsRelay(
                pool=pool,
                nats_url=nats_url,
                stream=stream,
                watcher=watcher,
                counters=ProcessorCounters(),
            )
            with pytest.raises(relay_module.RelayError) as refused:
                async with relay:
                    pass
    finally:
        await nc.close()
    assert str(refused.value).startswith(
        f"JetStream stream {stream} holds event sequence {EVENTS + 2} but this database's"
        f" event log ends at {EVENTS}"
    )


async def test_a_relay_refusing_the_stream_mid_run_reports_its_failure(
    pool: Pool, database_url: str, nats_url: str, stream_name: str
) -> None:
    """Running, the relay published 1-10; the database is then restored from a backup at 5
    (its sessions cut; the pool replaces them unseen). The relay finds the log's head behind
    its position, its recovery finds the stream holding events past that head and refuses
    it: ``failure()`` raises that error (the worker ends on it, and its parent restarts it
    with the reason logged) instead of the publishing task dying unnoticed, or waiting for
    sequences the log had already given it."""
    async with HeadWatcher(database_url) as watcher:
        relay = NatsRelay(
            pool=pool,
            nats_url=nats_url,
            stream=stream_name,
            watcher=watcher,
            counters=ProcessorCounters(),
        )
        published: list[int] = []
        with pytest.raises(relay_module.RelayError) as refused:
            await _publish_then_restore(relay, pool, published)
    assert published == [EVENTS]
    assert "but this database's event log ends at 5" in str(refused.value)


async def _publish_then_restore(relay: NatsRelay, pool: Pool, published: list[int]) -> None:
    """Run ``relay`` until it published the log, note its position, restore the database to
    its first five events (cutting its sessions), and wait for the relay's failure."""
    async with relay:
        for _ in range(200):
            if relay.published_seq >= EVENTS:
                break
            await asyncio.sleep(0.05)
        published.append(relay.published_seq)
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM events WHERE seq > 5")
            await conn.execute("UPDATE event_head SET seq = 5")
            await conn.execute("UPDATE event_relay SET published_seq = 5")
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        await asyncio.wait_for(relay.failure(), timeout=30)


async def _short_duplicate_window(nats_url: str, stream: str) -> None:
    """The stream with a duplicate window of 1 s (2 min in production), so that a retry after
    it stands for one after a NATS outage of over two minutes."""
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().add_stream(
            StreamConfig(name=stream, subjects=[STREAM_SUBJECTS], duplicate_window=1.0)
        )
    finally:
        await nc.close()


class _LostAck:
    """Drops the first acknowledgement JetStream sends back."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        #: Set when it was dropped, at ``at`` (the loop's clock).
        self.happened = asyncio.Event()
        self.at = 0.0
        answer = relay_module._BatchAcks.answer

        def lossy(acks: Any, seq: int, data: bytes, headers: Any) -> None:
            if not self.happened.is_set():
                self.at = asyncio.get_running_loop().time()
                self.happened.set()
                return
            answer(acks, seq, data, headers)

        monkeypatch.setattr(relay_module._BatchAcks, "answer", lossy)


def _relay(pool: Pool, nats_url: str, stream: str, watcher: HeadWatcher) -> NatsRelay:
    return NatsRelay(
        pool=pool,
        nats_url=nats_url,
        stream=stream,
        watcher=watcher,
        counters=ProcessorCounters(),
        batch_size=EVENTS,
        ack_timeout_s=1.5,
    )


async def test_a_batch_whose_acknowledgement_is_lost_is_not_published_twice(
    pool: Pool, database_url: str, nats_url: str, stream_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first acknowledgement of a batch never arrives (lost on the way back), so the batch
    fails after the ack timeout; the retry comes after the stream's duplicate window, when
    message ids no longer deduplicate. The relay checks the stream's tail before publishing
    again: every event once. It used to publish the batch again, and the stream held 1-10
    twice."""
    await _short_duplicate_window(nats_url, stream_name)
    lost = _LostAck(monkeypatch)
    async with (
        HeadWatcher(database_url) as watcher,
        _relay(pool, nats_url, stream_name, watcher) as relay,
    ):
        for _ in range(400):
            if relay.published_seq >= EVENTS:
                break
            await asyncio.sleep(0.05)
    assert lost.happened.is_set()
    assert await _sequences_in_stream(nats_url, stream_name) == list(range(1, EVENTS + 1))


async def test_a_stop_after_a_lost_acknowledgement_does_not_publish_twice(
    pool: Pool, database_url: str, nats_url: str, stream_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As above, but the processor is stopped (SIGTERM) after the ack timeout and before the
    loop's next turn looks at the stream's tail: the stop's drain publishes what is left, and
    looks at the tail first. It used to publish from the recorded position, relying on message
    ids past the duplicate window, and the stream held 1-10 twice (found by review)."""
    await _short_duplicate_window(nats_url, stream_name)
    lost = _LostAck(monkeypatch)
    loop = asyncio.get_running_loop()
    async with (
        HeadWatcher(database_url) as watcher,
        _relay(pool, nats_url, stream_name, watcher) as relay,
    ):
        await asyncio.wait_for(lost.happened.wait(), timeout=30)
        # the ack timeout at +1.5 s, the loop's look at the tail at +2.5 s: stop in between
        await asyncio.sleep(lost.at + 1.8 - loop.time())
        unsure = relay.published_seq
    assert unsure == 0  # stopped while the batch's fate was unknown
    assert await _sequences_in_stream(nats_url, stream_name) == list(range(1, EVENTS + 1))
