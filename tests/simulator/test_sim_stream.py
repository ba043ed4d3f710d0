"""The WebSocket stream served by a real simulator on 127.0.0.1:0, read with aiohttp clients."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from simulator.app import RunningSimulator, run_simulator
from simulator.config import SimConfig
from simulator.faults import WsFaultRates
from simulator.tape import TapeParams, generate

FIELDS = {"ticker", "ts", "quantity", "price", "tradeId"}


def config(ws_faults: WsFaultRates | None = None, **changes: Any) -> SimConfig:
    """A test config on a free port: clean unless WebSocket faults are given."""
    base: dict[str, Any] = {"port": 0, "rest_lag_ms": 100, "tape": TapeParams(rate=300.0)}
    if ws_faults is not None:
        base["ws_faults"] = ws_faults
    base.update(changes)
    return SimConfig.for_profile("clean", **base)


def parse_valid(text: str) -> dict[str, Any] | None:
    """The frame as a dict if it follows the protocol, else None."""
    try:
        obj = json.loads(text, parse_float=Decimal)
    except ValueError:
        return None
    if not isinstance(obj, dict) or set(obj) != FIELDS or not isinstance(obj["ticker"], str):
        return None
    for key in ("ts", "tradeId"):
        if isinstance(obj[key], bool) or not isinstance(obj[key], int):
            return None
    if not 10**12 <= obj["ts"] < 10**13:
        return None
    for key in ("price", "quantity"):
        if isinstance(obj[key], bool) or not isinstance(obj[key], int | Decimal | str):
            return None
        try:
            obj[key] = Decimal(str(obj[key]))
        except ArithmeticError:
            return None
        if not obj[key] > 0:
            return None
    return obj


async def read_frames(
    sim: RunningSimulator, count: int, query: str = "", within_s: float = 5.0
) -> tuple[list[str], aiohttp.ClientWebSocketResponse]:
    """Read up to `count` text frames (or until the server closes / time runs out)."""
    frames: list[str] = []
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(sim.ws_url + query)
        async with ws:
            while len(frames) < count and time.monotonic() < deadline:
                try:
                    message = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
                except TimeoutError:
                    break
                if message.type is aiohttp.WSMsgType.TEXT:
                    frames.append(message.data)
                else:
                    break
        return frames, ws


async def test_clean_stream_is_the_truth_in_order() -> None:
    """A clean stream delivers every true trade once, in order, with exact values."""
    async with run_simulator(config()) as sim:
        frames, _ = await read_frames(sim, 600)
        assert len(frames) == 600
        received: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for text in frames:
            obj = parse_valid(text)
            assert obj is not None, text
            received[obj["ticker"]].append(obj)
        assert set(received) == {"BTC", "ETH", "SOL"}
        for ticker, objs in received.items():
            ids = [o["tradeId"] for o in objs]
            truth = [t for t in sim.truth.trades(ticker) if t.trade_id in set(ids)]
            truth_ids = [t.trade_id for t in sim.truth.trades(ticker)]
            first = truth_ids.index(ids[0])
            assert ids == truth_ids[first : first + len(ids)]
            for obj, trade in zip(objs, truth, strict=True):
                assert (obj["ts"], obj["price"], obj["quantity"]) == (
                    trade.ts,
                    trade.price,
                    trade.quantity,
                )


async def test_a_past_start_is_rest_history_and_only_new_trades_are_streamed() -> None:
    """Started 20 s in the past (a restart continuing its market): the truth holds exactly the
    tape of those 20 s at once, and the stream sends only trades that happen from then on."""
    start = int(time.time() * 1000) - 20_000
    async with run_simulator(config(start_ms=start, seed=5)) as sim:
        history_end = max(t.ts for ticker in sim.tickers for t in sim.truth.trades(ticker))
        frames, _ = await read_frames(sim, 50)
        for ticker in sim.tickers:
            got = sim.truth.trades(ticker, start, start + 15_000)
            tape = generate(ticker, config().tape, 5, start, 15_000)
            assert [(t.trade_id, t.ts, t.price, t.quantity) for t in got] == [
                (t.trade_id, t.ts, t.price, t.quantity) for t in tape
            ]
    assert sim.start_ms == start
    assert len(frames) == 50
    streamed = [parse_valid(text) for text in frames]
    assert all(obj is not None and obj["ts"] > history_end for obj in streamed)


@pytest.mark.parametrize("wanted", [("ETH",), ("BTC", "SOL")])
async def test_tickers_query_narrows_the_stream(wanted: tuple[str, ...]) -> None:
    """`?tickers=` limits the stream to those tickers."""
    async with run_simulator(config()) as sim:
        frames, _ = await read_frames(sim, 200, query="?tickers=" + ",".join(wanted))
        tickers = Counter(json.loads(f)["ticker"] for f in frames)
        assert len(frames) == 200
        assert set(tickers) == set(wanted)


async def test_unknown_ticker_in_query_is_rejected() -> None:
    """`?tickers=XYZ` fails the handshake with 400."""
    async with run_simulator(config()) as sim, aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(sim.ws_url + "?tickers=BTC,XYZ")
        assert info.value.status == 400


async def test_faulty_stream_shows_malformed_frames_and_duplicates() -> None:
    """With faults on, malformed frames and repeated tradeIds actually reach the client."""
    faults = WsFaultRates(duplicate=0.2, malformed=0.1, phantom=0.05)
    async with run_simulator(config(faults)) as sim:
        frames, _ = await read_frames(sim, 1500)
        parsed = [parse_valid(f) for f in frames]
        invalid = sum(1 for p in parsed if p is None)
        ids = Counter((p["ticker"], p["tradeId"]) for p in parsed if p is not None)
        repeated = sum(n - 1 for n in ids.values() if n > 1)
        phantoms = [
            key for key in ids if not any(t.trade_id == key[1] for t in sim.truth.trades(key[0]))
        ]
        assert len(frames) == 1500
        assert 0.05 * len(frames) < invalid < 0.2 * len(frames)
        assert repeated > 0.1 * len(frames)
        assert phantoms
        faults_seen = sim.stats.stream.faults
        assert faults_seen["malformed"] >= invalid
        assert faults_seen["duplicate"] > 0
        assert sum(faults_seen[f"malformed.{k}"] for k in ("not_json", "missing_field")) > 0


async def test_injected_disconnects_close_the_connection() -> None:
    """Injected disconnects drop each connection (close frame or abort); reconnecting works."""
    async with run_simulator(config(WsFaultRates(disconnect=0.05))) as sim:
        for attempt in range(1, 7):
            frames, ws = await read_frames(sim, 10_000, within_s=5.0)
            assert 0 < len(frames) < 10_000
            assert ws.closed
            assert sim.stats.stream.faults["disconnect"] == attempt
        faults = sim.stats.stream.faults
        assert faults["disconnect.close"] > 0
        assert faults["disconnect.abort"] > 0
        assert sim.stats.stream.connections_total == 6


async def test_each_client_gets_its_own_faults() -> None:
    """Two concurrent clients both get the stream, each missing different dropped trades."""
    async with run_simulator(config(WsFaultRates(drop=0.3))) as sim:
        (first, _), (second, _) = await asyncio.gather(
            read_frames(sim, 400, query="?tickers=BTC"), read_frames(sim, 400, query="?tickers=BTC")
        )
        assert len(first) == len(second) == 400
        first_ids = [json.loads(f)["tradeId"] for f in first]
        second_ids = [json.loads(f)["tradeId"] for f in second]
        low, high = max(first_ids[0], second_ids[0]), min(first_ids[-1], second_ids[-1])
        overlap = {t.trade_id for t in sim.truth.trades("BTC") if low <= t.trade_id <= high}
        assert len(overlap) > 200
        first_missing = overlap - set(first_ids)
        second_missing = overlap - set(second_ids)
        assert 0.15 * len(overlap) < len(first_missing) < 0.45 * len(overlap)
        assert 0.15 * len(overlap) < len(second_missing) < 0.45 * len(overlap)
        assert first_missing != second_missing
        assert sim.stats.stream.connections_total == 2


async def test_shutdown_closes_streams_with_going_away() -> None:
    """Leaving run_simulator closes open WebSockets with code 1001."""
    async with aiohttp.ClientSession() as session:
        async with run_simulator(config()) as sim:
            ws = await session.ws_connect(sim.ws_url)
            message = await ws.receive(timeout=5)
            assert message.type is aiohttp.WSMsgType.TEXT
        while True:
            message = await ws.receive(timeout=5)
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert message.data == aiohttp.WSCloseCode.GOING_AWAY
        await ws.close()
