"""What the relay tests share: appending events to the log and reading the stream back."""

from __future__ import annotations

import asyncio
import time

import nats
from nats.js import JetStreamContext

from processor.db import Pool
from processor.event_log import NewEvent, append_events
from processor.events import SEQUENCE_HEADER
from processor.relay import NatsRelay


async def append_trade_events(pool: Pool, count: int, payload: bytes = b"x") -> None:
    """Append ``count`` trade events to the log in one transaction."""
    async with pool.connection() as conn, conn.transaction():
        await append_events(
            conn,
            [
                NewEvent("BTC", "trading.trade.BTC", "trading.v1.TradeEvent", payload)
                for _ in range(count)
            ],
        )


async def stream_sequences(js: JetStreamContext, stream: str) -> list[int | None]:
    """The event sequence of every message in ``stream``, in stream order (None for a message
    without one; deleted messages skipped)."""
    info = await js.stream_info(stream)
    seqs: list[int | None] = []
    for stream_seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await js.get_msg(stream, stream_seq)
        except nats.js.errors.NotFoundError:
            continue
        header = (msg.headers or {}).get(SEQUENCE_HEADER)
        seqs.append(int(header) if header is not None else None)
    return seqs


async def wait_published(relay: NatsRelay, seq: int, timeout_s: float = 20) -> None:
    """Wait until ``relay`` has published through ``seq``; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while relay.published_seq < seq:
        assert time.monotonic() < deadline, f"relay stuck at {relay.published_seq} < {seq}"
        await asyncio.sleep(0.02)
