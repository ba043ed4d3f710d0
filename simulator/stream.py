"""The provider WebSocket `GET /stream[?tickers=BTC,ETH]`: one JSON text frame per trade.

Each connection subscribes to the hub, gets its own fault plan (seeded by the seed and the
connection ordinal) and a `FrameShaper`, and sends the shaped frames in order. Unknown
tickers in `?tickers=` are rejected with 400 before the upgrade. Client messages are read
(so pings and close frames are handled) and ignored.

Connections end when the client closes, on an injected disconnect (close frame 1011 or a
TCP abort), when the client is too slow (close 1013 "slow_consumer") and on server
shutdown (close 1001).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from simulator.faults import Disconnect, WsFaultPlan
from simulator.hub import SHUTDOWN, SLOW_CONSUMER, Subscriber
from simulator.logfmt import get_logger, kv
from simulator.query import QueryError, json_error
from simulator.shaping import FrameShaper
from simulator.state import STATE
from simulator.stats import StreamStats
from simulator.truth import TruthStore

log = get_logger("stream")

MAX_CLIENT_MESSAGE = 64 * 1024


def parse_tickers(query: Any, truth: TruthStore) -> frozenset[str] | None:
    """The `tickers` filter (None = all); 400 on unknown tickers."""
    raw = str(query.get("tickers", ""))
    wanted = [t.strip() for t in raw.split(",") if t.strip()]
    if not wanted:
        return None
    unknown = [t for t in wanted if t not in truth]
    if unknown:
        raise QueryError(400, f"unknown ticker {unknown[0]!r}")
    return frozenset(wanted)


async def _pump(
    ws: web.WebSocketResponse,
    subscriber: Subscriber,
    shaper: FrameShaper,
    transport: asyncio.Transport | None,
    stats: StreamStats,
) -> str:
    """Send shaped frames until something ends the connection; returns why."""
    send = ws.send_frame
    text = WSMsgType.TEXT
    while True:
        trades = await subscriber.take()
        if trades is None:
            reason = subscriber.closed_reason or SHUTDOWN
            if reason == SLOW_CONSUMER:
                stats.slow_consumer_disconnects += 1
                code = WSCloseCode.TRY_AGAIN_LATER
            else:
                code = WSCloseCode.GOING_AWAY
            await ws.close(code=code, message=reason.encode())
            return reason
        offered = shaper.offered
        frames = shaper.feed(trades)
        stats.trades_offered += shaper.offered - offered
        try:
            for frame in frames:
                await send(frame, text)
        except ConnectionError:
            return "send_failed"
        stats.frames_sent += len(frames)
        mode = shaper.disconnect
        if mode is not None:
            if mode is Disconnect.ABORT and transport is not None:
                transport.abort()
            else:
                await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"injected disconnect")
            return f"fault_{mode.value}"


async def _drain(ws: web.WebSocketResponse) -> str:
    """Read and ignore client messages until the connection closes."""
    async for _message in ws:
        pass
    return "client_closed"


async def handle_stream(request: web.Request) -> web.StreamResponse:
    """`GET /stream`."""
    state = request.app[STATE]
    try:
        tickers = parse_tickers(request.query, state.truth)
    except QueryError as exc:
        return json_error(exc.status, exc.message)
    transport = request.transport
    ws = web.WebSocketResponse(compress=False, max_msg_size=MAX_CLIENT_MESSAGE)
    await ws.prepare(request)
    ordinal = state.connection_ordinal()
    stats = state.stats.stream
    shaper = FrameShaper(
        WsFaultPlan(state.config.ws_faults, state.config.seed, ordinal), stats.faults
    )
    subscriber = state.hub.subscribe(tickers)
    stats.connections_total += 1
    stats.connections_open += 1
    peer = request.remote
    log.info(
        kv(
            "ws_connected",
            connection=ordinal,
            peer=peer,
            tickers=",".join(sorted(tickers)) if tickers else "*",
        )
    )
    pump = asyncio.create_task(_pump(ws, subscriber, shaper, transport, stats))
    reader = asyncio.create_task(_drain(ws))
    try:
        await asyncio.wait({pump, reader}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        pump.cancel()
        reader.cancel()
        results = await asyncio.gather(pump, reader, return_exceptions=True)
        state.hub.unsubscribe(subscriber)
        stats.connections_open -= 1
        reason = next((r for r in results if isinstance(r, str)), "cancelled")
        for result in results:
            if isinstance(result, Exception):
                log.error(kv("ws_error", connection=ordinal, error=repr(result)))
        log.info(
            kv(
                "ws_disconnected",
                connection=ordinal,
                reason=reason,
                offered=shaper.offered,
                pending=shaper.pending,
            )
        )
    if not ws.closed:
        await ws.close()
    return ws
