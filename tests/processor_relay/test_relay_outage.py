"""The relay through a NATS outage: events committed while the server is down are published
once it is back, each exactly once, in order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
from nats.js.api import StreamConfig

from devstack.nats import EmbeddedNats
from processor.db import Pool
from processor.events import STREAM_SUBJECTS
from processor.head_watch import HeadWatcher
from processor.relay import NatsRelay
from processor.stats import ProcessorCounters
from tests.processor_relay.stream import append_trade_events, stream_sequences, wait_published


async def test_events_committed_during_a_nats_outage_are_published_once_it_returns(
    pool: Pool, database_url: str, tmp_path: Path
) -> None:
    store = tmp_path / "nats"
    first = EmbeddedNats(store_dir=store).start()
    port, url = first.port, first.url
    second: EmbeddedNats | None = None
    counters = ProcessorCounters()
    try:
        nc = await nats.connect(url)
        try:
            await nc.jetstream().add_stream(StreamConfig(name="OUTAGE", subjects=[STREAM_SUBJECTS]))
        finally:
            await nc.close()
        async with (
            HeadWatcher(database_url) as watcher,
            NatsRelay(
                pool=pool,
                nats_url=url,
                stream="OUTAGE",
                watcher=watcher,
                counters=counters,
                batch_size=20,
                ack_timeout_s=2.0,
            ) as relay,
        ):
            await append_trade_events(pool, 50)
            await wait_published(relay, 50)
            first.stop()
            for _ in range(5):  # committed while the server is down
                await append_trade_events(pool, 20)
            await asyncio.sleep(1.5)
            assert relay.published_seq == 50
            second = EmbeddedNats(store_dir=store, port=port).start()
            await wait_published(relay, 150, timeout_s=30)
        nc = await nats.connect(url)
        try:
            seqs = await stream_sequences(nc.jetstream(), "OUTAGE")
        finally:
            await nc.close()
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert seqs == list(range(1, 151))
    assert counters.events_published == 150
