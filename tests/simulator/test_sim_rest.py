"""The REST protocol served by a real simulator on 127.0.0.1:0, checked with aiohttp clients."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from simulator.app import RunningSimulator, run_simulator
from simulator.clock import wall_clock_ms
from simulator.config import SimConfig
from simulator.faults import RestFaultRates
from simulator.tape import TapeParams


def clean(**changes: Any) -> SimConfig:
    """A fault-free test config on a free port."""
    base: dict[str, Any] = {"port": 0, "rest_lag_ms": 100, "tape": TapeParams(rate=300.0)}
    base.update(changes)
    return SimConfig.for_profile("clean", **base)


async def wait_until(predicate: Callable[[], bool], within_s: float = 5.0) -> None:
    """Poll until `predicate()` holds."""
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def get(
    session: aiohttp.ClientSession, sim: RunningSimulator, path: str, **params: object
) -> tuple[int, Any, Any]:
    """GET a JSON endpoint; numbers parsed as Decimal."""
    query = {k: str(v) for k, v in params.items()}
    async with session.get(sim.base_url + path, params=query) as response:
        body = json.loads(await response.text(), parse_float=Decimal)
        return response.status, body, response.headers


def keys(trades: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """(ts, tradeId) of REST objects."""
    return [(t["ts"], t["tradeId"]) for t in trades]


async def test_paging_covers_a_window_exactly() -> None:
    """Paging with inclusive startTime and tradeId dedupe yields exactly the truth, 100 per page."""
    config = clean(tape=TapeParams(rate=400.0, cluster_rate=0.2, cluster_max=5))
    async with run_simulator(config) as sim, aiohttp.ClientSession() as session:
        start, end = sim.start_ms, sim.start_ms + 1_000
        await wait_until(lambda: wall_clock_ms() > end + config.rest_lag_ms + 20)
        collected: dict[int, dict[str, Any]] = {}
        page_sizes = []
        cursor = start
        while True:
            status, page, _ = await get(
                session, sim, "/trades", ticker="BTC", startTime=cursor, endTime=end
            )
            assert status == 200
            page_sizes.append(len(page))
            assert len(page) <= 100
            assert keys(page) == sorted(keys(page))
            assert all(cursor <= t["ts"] < end for t in page)
            collected.update((t["tradeId"], t) for t in page)
            if len(page) < 100:
                break
            assert page[0]["ts"] != page[-1]["ts"]
            cursor = page[-1]["ts"]
        truth = sim.truth.trades("BTC", start, end)
        assert 100 in page_sizes
        assert sorted(collected) == [t.trade_id for t in truth]
        for trade in truth:
            got = collected[trade.trade_id]
            assert got["ts"] == trade.ts
            assert Decimal(str(got["price"])) == trade.price
            assert Decimal(str(got["quantity"])) == trade.quantity


async def test_end_time_is_exclusive() -> None:
    """A trade at exactly endTime is excluded; at startTime it is included."""
    async with run_simulator(clean()) as sim, aiohttp.ClientSession() as session:
        await wait_until(lambda: sim.truth.count("ETH") > 20)
        await asyncio.sleep(0.15)
        ts = sim.truth.trades("ETH")[10].ts
        _, before, _ = await get(
            session, sim, "/trades", ticker="ETH", startTime=ts - 50, endTime=ts
        )
        _, at, _ = await get(session, sim, "/trades", ticker="ETH", startTime=ts, endTime=ts + 1)
        assert before
        assert all(t["ts"] < ts for t in before)
        assert at
        assert all(t["ts"] == ts for t in at)
        assert [t["tradeId"] for t in at] == [
            t.trade_id for t in sim.truth.trades("ETH", ts, ts + 1)
        ][:100]


async def test_lag_hides_young_trades() -> None:
    """Trades younger than the REST lag are invisible, then appear once the lag has passed."""
    config = clean(rest_lag_ms=600, tape=TapeParams(rate=300.0, burst_rate=0.0))
    async with run_simulator(config) as sim, aiohttp.ClientSession() as session:
        await asyncio.sleep(1.0)
        now = wall_clock_ms()
        young = sim.truth.trades("SOL", now - 300, now)
        assert young
        _, page, _ = await get(session, sim, "/trades", ticker="SOL", startTime=now - 300)
        assert page == []
        _, older, _ = await get(session, sim, "/trades", ticker="SOL", startTime=sim.start_ms)
        asked_at = wall_clock_ms()
        assert older
        assert max(t["ts"] for t in older) <= asked_at - config.rest_lag_ms
        await asyncio.sleep(0.7)
        _, page, _ = await get(
            session, sim, "/trades", ticker="SOL", startTime=now - 300, endTime=now
        )
        expected = sim.truth.trades("SOL", now - 300, now)
        assert len(expected) >= len(young)
        assert [t["tradeId"] for t in page] == [t.trade_id for t in expected][:100]


async def test_unknown_ticker_is_404_with_json_error() -> None:
    """An unknown ticker answers 404 {"error": "unknown ticker 'XYZ'"}."""
    async with run_simulator(clean()) as sim, aiohttp.ClientSession() as session:
        status, body, _ = await get(session, sim, "/trades", ticker="XYZ", startTime=0)
        assert status == 404
        assert body == {"error": "unknown ticker 'XYZ'"}


@pytest.mark.parametrize(
    "params",
    [
        {"ticker": "BTC"},
        {"startTime": 0},
        {"ticker": "BTC", "startTime": "abc"},
        {"ticker": "BTC", "startTime": "1.5"},
        {"ticker": "BTC", "startTime": -5},
        {"ticker": "BTC", "startTime": 100, "endTime": 100},
        {"ticker": "BTC", "startTime": 100, "endTime": 50},
        {"ticker": "BTC", "startTime": 100, "endTime": "soon"},
    ],
)
async def test_bad_parameters_are_400_with_json_error(params: dict[str, object]) -> None:
    """Missing, non-integer, negative or inverted times answer 400 with a JSON error."""
    async with run_simulator(clean()) as sim, aiohttp.ClientSession() as session:
        status, body, _ = await get(session, sim, "/trades", **params)
        assert status == 400
        assert isinstance(body["error"], str)
        assert body["error"]


async def test_tickers_endpoint() -> None:
    """GET /tickers lists the configured tickers."""
    config = clean(tickers=("BTC", "DOGE"))
    async with run_simulator(config) as sim, aiohttp.ClientSession() as session:
        status, body, _ = await get(session, sim, "/tickers")
        assert (status, body) == (200, ["BTC", "DOGE"])


async def test_more_than_100_trades_in_one_ms_returns_first_100_by_trade_id() -> None:
    """When one millisecond holds more than 100 trades, REST returns its first 100 by tradeId."""
    config = clean(
        tickers=("BTC",),
        rest_lag_ms=50,
        tape=TapeParams(rate=3000.0, cluster_rate=1.0, cluster_max=300, burst_rate=0.0),
    )
    async with run_simulator(config) as sim, aiohttp.ClientSession() as session:

        def big_ms() -> int | None:
            visible = sim.truth.trades("BTC", 0, wall_clock_ms() - 100)
            counts = Counter(t.ts for t in visible)
            return next((ts for ts, n in counts.items() if n > 100), None)

        await wait_until(lambda: big_ms() is not None)
        ts = big_ms()
        assert ts is not None
        expected = [t.trade_id for t in sim.truth.trades("BTC", ts, ts + 1)]
        assert len(expected) > 100
        _, page, _ = await get(session, sim, "/trades", ticker="BTC", startTime=ts, endTime=ts + 1)
        assert [t["tradeId"] for t in page] == expected[:100]
        _, open_page, _ = await get(session, sim, "/trades", ticker="BTC", startTime=ts)
        assert [t["tradeId"] for t in open_page] == expected[:100]


async def test_server_errors_are_5xx() -> None:
    """With error_rate=1 every request fails with a 5xx JSON error, counted in /stats."""
    config = clean(rest_faults=RestFaultRates(latency_median_ms=1.0, error_rate=1.0))
    async with run_simulator(config) as sim, aiohttp.ClientSession() as session:
        for _ in range(10):
            status, body, _ = await get(session, sim, "/trades", ticker="BTC", startTime=0)
            assert status in (500, 502, 503, 504)
            assert "error" in body
        _, stats, _ = await get(session, sim, "/stats")
        assert stats["rest"]["by_outcome"]["error"] == 10


async def test_throttling_is_429_with_retry_after() -> None:
    """With throttle_rate=1 requests answer 429 with a Retry-After header in seconds."""
    config = clean(rest_faults=RestFaultRates(throttle_rate=1.0, retry_after_s=2))
    async with run_simulator(config) as sim, aiohttp.ClientSession() as session:
        status, body, headers = await get(session, sim, "/trades", ticker="BTC", startTime=0)
        assert status == 429
        assert headers["Retry-After"] == "2"
        assert "error" in body


async def test_hang_then_client_timeout_cancels_the_handler() -> None:
    """A hanging request outlives the client timeout; the server sees the handler cancelled."""
    config = clean(rest_faults=RestFaultRates(timeout_rate=1.0, hang_ms=30_000.0))
    async with run_simulator(config) as sim, aiohttp.ClientSession() as session:
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            async with session.get(
                sim.base_url + "/trades",
                params={"ticker": "BTC", "startTime": "0"},
                timeout=aiohttp.ClientTimeout(total=0.3),
            ) as response:
                await response.read()
        assert time.monotonic() - started < 2.0
        await wait_until(lambda: sim.stats.rest.cancelled == 1)
        assert sim.stats.rest.in_flight == 0
        assert sim.stats.rest.by_outcome["timeout"] == 1


async def test_latency_is_applied() -> None:
    """A 150 ms latency setting delays answers by about that much."""
    config = clean(rest_faults=RestFaultRates(latency_median_ms=150.0, latency_sigma=0.0))
    async with run_simulator(config) as sim, aiohttp.ClientSession() as session:
        started = time.monotonic()
        status, _, _ = await get(session, sim, "/trades", ticker="BTC", startTime=0)
        elapsed = time.monotonic() - started
        assert status == 200
        assert 0.14 <= elapsed < 1.0


async def test_concurrent_requests_counted_in_flight() -> None:
    """Concurrent slow requests show up as in flight in /stats."""
    config = clean(rest_faults=RestFaultRates(latency_median_ms=300.0, latency_sigma=0.0))
    async with run_simulator(config) as sim, aiohttp.ClientSession() as session:
        tasks = [
            asyncio.create_task(get(session, sim, "/trades", ticker="BTC", startTime=0))
            for _ in range(5)
        ]
        await wait_until(lambda: sim.stats.rest.in_flight == 5)
        _, stats, _ = await get(session, sim, "/stats")
        assert stats["rest"]["in_flight"] == 5
        results = await asyncio.gather(*tasks)
        assert [r[0] for r in results] == [200] * 5
        assert sim.stats.rest.in_flight == 0
        assert sim.stats.rest.max_in_flight == 5


async def test_same_seed_same_rest_outcomes() -> None:
    """Two servers with the same seed answer the same status sequence; outcomes are mixed."""
    rates = RestFaultRates(latency_median_ms=1.0, error_rate=0.3, throttle_rate=0.3)

    async def statuses(seed: int) -> list[int]:
        config = clean(seed=seed, rest_faults=rates)
        async with run_simulator(config) as sim, aiohttp.ClientSession() as session:
            return [
                (await get(session, sim, "/trades", ticker="BTC", startTime=0))[0]
                for _ in range(30)
            ]

    first, second, other = await statuses(3), await statuses(3), await statuses(4)
    assert first == second
    assert first != other
    assert {200, 429} <= set(first)
    assert any(500 <= s < 600 for s in first)


async def test_truth_endpoints_match_the_store(tmp_path: Path) -> None:
    """/truth/trades, /truth/vwap and /truth/export expose the ground truth exactly."""
    truth_file = tmp_path / "truth.jsonl"
    async with (
        run_simulator(clean(truth_file=truth_file)) as sim,
        aiohttp.ClientSession() as session,
    ):
        await wait_until(lambda: sim.truth.count("BTC") > 50)
        # Just past the newest released trade, not the wall clock: on a loaded machine the
        # tape may release trades stamped before the wall clock's now between the reads below.
        end = sim.truth.trades("BTC")[-1].ts + 1
        status, trades, _ = await get(session, sim, "/truth/trades", ticker="BTC", endTime=end)
        assert status == 200
        truth = sim.truth.trades("BTC", 0, end)
        assert [(t["tradeId"], Decimal(t["price"])) for t in trades] == [
            (t.trade_id, t.price) for t in truth
        ]
        assert all(isinstance(t["price"], str) for t in trades)
        status, vwap, _ = await get(
            session, sim, "/truth/vwap", ticker="BTC", endTime=end, windowMs=300_000
        )
        expected = sim.truth.vwap("BTC", end, 300_000)
        assert vwap["count"] == expected.count == len(truth)
        assert Decimal(vwap["notional"]) == expected.notional
        assert Decimal(vwap["vwap"]) == expected.vwap
        async with session.post(sim.base_url + "/truth/export") as response:
            assert response.status == 200
            exported = await response.json()
        assert exported["count"] == len(truth_file.read_text().splitlines()) > 0
    count_at_exit = sum(sim.truth.count(t) for t in sim.tickers)
    assert len(truth_file.read_text().splitlines()) == count_at_exit
