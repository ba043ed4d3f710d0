"""The relay's batch acknowledgement: one acknowledgement proves a whole batch stored; anything
unexpected in the stream makes it acknowledge every message instead, still each event once."""

from __future__ import annotations

import nats
from nats.js.api import StreamConfig

from processor.db import Pool
from processor.events import STREAM_SUBJECTS
from processor.head_watch import HeadWatcher
from processor.relay import NatsRelay
from processor.stats import ProcessorCounters
from tests.processor_relay.stream import append_trade_events, stream_sequences, wait_published


async def test_batches_are_confirmed_by_one_ack_unless_the_stream_surprises(
    pool: Pool, database_url: str, nats_url: str, stream_name: str
) -> None:
    """Batches in an undisturbed stream are confirmed by their last acknowledgement; after a
    foreign message lands in the stream the next batch is acknowledged message by message; the
    stream ends with every event exactly once, in order, and the counter counts each once."""
    stream = stream_name
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    counters = ProcessorCounters()
    try:
        await js.add_stream(StreamConfig(name=stream, subjects=[STREAM_SUBJECTS]))
        async with (
            HeadWatcher(database_url) as watcher,
            NatsRelay(
                pool=pool,
                nats_url=nats_url,
                stream=stream,
                watcher=watcher,
                counters=counters,
                batch_size=7,
            ) as relay,
        ):
            await append_trade_events(pool, 20)
            await wait_published(relay, 20)
            assert relay.batches_confirmed_at_once >= 3
            assert relay.batches_acknowledged_per_message == 0

            await js.publish("trading.other.X", b"foreign")
            await append_trade_events(pool, 5)
            await wait_published(relay, 25)
            assert relay.batches_acknowledged_per_message == 1

            await append_trade_events(pool, 5)
            await wait_published(relay, 30)
            assert relay.batches_acknowledged_per_message == 1
        seqs = await stream_sequences(js, stream)
    finally:
        await nc.close()
    assert seqs == [*range(1, 21), None, *range(21, 31)]
    assert counters.events_published == 30


async def test_a_stream_kept_shorter_than_the_duplicate_window_is_created(
    pool: Pool, database_url: str, nats_url: str, stream_name: str
) -> None:
    """NATS_MAX_AGE may be a minute: the relay creates its stream with the duplicate window
    cut to that age (JetStream refuses a longer one, which stopped every relay start) and
    publishes."""
    async with (
        HeadWatcher(database_url) as watcher,
        NatsRelay(
            pool=pool,
            nats_url=nats_url,
            stream=stream_name,
            watcher=watcher,
            counters=ProcessorCounters(),
            max_age_s=60.0,
        ) as relay,
    ):
        await append_trade_events(pool, 3)
        await wait_published(relay, 3)
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info(stream_name)
    finally:
        await nc.close()
    assert (info.config.max_age, info.config.duplicate_window) == (60.0, 60.0)
