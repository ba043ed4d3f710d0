"""GetVwap, GetVwapSeries, GetTrades and ListSymbols over a real store and a real gRPC server."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from decimal import Decimal
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trading.v1 import vwap_pb2

import vwap.service
from tests.outages import database_away, wait_for_health
from tests.vwap.support import FakeProcessor, VwapStarter, insert_trades
from tradekit.domain import Trade
from tradekit.money import vwap_quotient
from tradekit.wire import duration_from_ms, ms_from_timestamp, timestamp_from_ms
from vwap.ranges import DAY_MS, HOUR_MS, MINUTE_MS
from vwap.storage import dt_from_ms

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

BASE = 1_700_006_400_000 - 1_700_006_400_000 % DAY_MS  # a UTC midnight in Nov 2023
_symbols = (f"S{i}" for i in itertools.count())


def _brute(trades: list[Trade], start: int, end: int) -> tuple[Decimal, Decimal, int]:
    inside = [t for t in trades if start <= t.ts_ms < end]
    return (
        sum((t.notional for t in inside), Decimal(0)),
        sum((t.quantity for t in inside), Decimal(0)),
        len(inside),
    )


def _check_point(point: vwap_pb2.VwapPoint, trades: list[Trade], end: int, window: int) -> None:
    notional, volume, count = _brute(trades, end - window, end)
    assert (Decimal(point.notional), Decimal(point.volume), point.trade_count) == (
        notional,
        volume,
        count,
    )
    assert ms_from_timestamp(point.end_time, field="e") == end
    assert ms_from_timestamp(point.start_time, field="s") == end - window
    if count:
        assert Decimal(point.vwap) == vwap_quotient(notional, volume)  # scale may differ
    else:
        assert not point.HasField("vwap")


_anchor = st.sampled_from([0, MINUTE_MS, HOUR_MS, DAY_MS, DAY_MS + HOUR_MS, 2 * DAY_MS])
_offset = st.builds(lambda a, j: max(0, a + j), _anchor, st.integers(-90_000, 90_000))
_price = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("65000"), places=4)
_qty = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("50"), places=8)
_window = st.sampled_from(
    [1, 7, 999, MINUTE_MS, 5 * MINUTE_MS + 1, HOUR_MS, DAY_MS, 2 * DAY_MS + 3 * MINUTE_MS + 17]
)


@st.composite
def _trade_set(draw: st.DrawFn) -> list[tuple[int, Decimal, Decimal]]:
    times = draw(st.lists(_offset, max_size=30))
    burst = draw(st.lists(st.just(draw(_offset)), max_size=4))
    return [(off, draw(_price), draw(_qty)) for off in times + burst]


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    raw=_trade_set(),
    windows=st.lists(st.tuples(_offset, _window), min_size=1, max_size=4),
    verified_off=st.integers(0, 3 * DAY_MS),
    from_off=st.one_of(st.none(), st.integers(-DAY_MS, 2 * DAY_MS)),
)
async def test_get_vwap_equals_brute_force(
    start_vwap: VwapStarter,
    store_url: str,
    raw: list[tuple[int, Decimal, Decimal]],
    windows: list[tuple[int, int]],
    verified_off: int,
    from_off: int | None,
) -> None:
    """GetVwap's notional, volume, count and vwap equal a brute-force Decimal computation, and
    verified says whether the window lies in [verified_from, verified_until) of the symbol."""
    symbol = next(_symbols)
    trades = [Trade(symbol, i, BASE + off, p, q) for i, (off, p, q) in enumerate(raw)]
    async with await psycopg.AsyncConnection.connect(store_url) as conn:
        await insert_trades(conn, trades)
        await conn.execute(
            "INSERT INTO symbols (symbol, verified_until, verified_from) VALUES (%s, %s, %s)",
            (
                symbol,
                dt_from_ms(BASE + verified_off),
                None if from_off is None else dt_from_ms(BASE + from_off),
            ),
        )
        await conn.commit()
    async with start_vwap(cache_size=0) as (_, stub):
        for end_off, window in windows:
            end = BASE + end_off + 1
            response = await stub.GetVwap(
                vwap_pb2.GetVwapRequest(
                    symbol=symbol, end_time=timestamp_from_ms(end), window=duration_from_ms(window)
                )
            )
            _check_point(response.point, trades, end, window)
            after_from = from_off is None or end - window >= BASE + from_off
            assert response.point.verified == (end <= BASE + verified_off and after_from)


async def _seed(store_url: str, trades: list[Trade]) -> None:
    async with await psycopg.AsyncConnection.connect(store_url) as conn:
        await insert_trades(conn, trades)
        await conn.commit()


def _spread(symbol: str, count: int, span_ms: int) -> list[Trade]:
    return [
        Trade(
            symbol,
            i,
            BASE + (i * 7919 * 1009) % span_ms,
            Decimal(100 + i % 13) / 4,
            Decimal(i % 5 + 1) / 8,
        )
        for i in range(count)
    ]


@pytest.mark.parametrize(
    ("start_off", "end_off", "step", "window"),
    [
        (0, 2 * HOUR_MS, MINUTE_MS, 5 * MINUTE_MS),
        (12_345, 3 * HOUR_MS, 7 * MINUTE_MS + 3, HOUR_MS + 1),
        (HOUR_MS, HOUR_MS, MINUTE_MS, 61),
        (0, DAY_MS, HOUR_MS, DAY_MS),
    ],
)
async def test_series_equals_brute_force_per_point(
    start_vwap: VwapStarter, store_url: str, start_off: int, end_off: int, step: int, window: int
) -> None:
    """Every GetVwapSeries point equals brute force; end times run start, start+step, ..."""
    trades = _spread("BTC", 400, DAY_MS + HOUR_MS)
    trades += [
        Trade("BTC", 10_000 + i, BASE + HOUR_MS - 1, Decimal("3.5"), Decimal(1)) for i in range(3)
    ]
    await _seed(store_url, trades)
    async with start_vwap() as (_, stub):
        request = vwap_pb2.GetVwapSeriesRequest(
            symbol="BTC",
            start_time=timestamp_from_ms(BASE + start_off),
            end_time=timestamp_from_ms(BASE + end_off),
            step=duration_from_ms(step),
            window=duration_from_ms(window),
        )
        points = [r.point async for r in stub.GetVwapSeries(request)]
    ends = list(range(BASE + start_off, BASE + end_off + 1, step))
    assert [ms_from_timestamp(p.end_time, field="e") for p in points] == ends
    for point, end in zip(points, ends, strict=True):
        _check_point(point, trades, end, window)


async def test_get_trades_pages_cover_the_range_once_in_order(
    start_vwap: VwapStarter, store_url: str
) -> None:
    """Paging with a small page size returns every trade of the range once, in (ts, id) order."""
    trades = _spread("BTC", 250, HOUR_MS)
    trades += [Trade("BTC", 5000 + i, BASE + 1000, Decimal(1), Decimal(1)) for i in range(9)]
    await _seed(store_url, trades)
    start, end = BASE + 1000, BASE + HOUR_MS - 60_000
    expected = sorted(
        (t.sort_key for t in trades if start <= t.ts_ms < end),
    )
    seen: list[tuple[int, int]] = []
    token = ""
    pages = 0
    async with start_vwap() as (_, stub):
        while True:
            page = await stub.GetTrades(
                vwap_pb2.GetTradesRequest(
                    symbol="BTC",
                    start_time=timestamp_from_ms(start),
                    end_time=timestamp_from_ms(end),
                    page_size=7,
                    page_token=token,
                )
            )
            pages += 1
            assert len(page.trades) <= 7
            seen += [
                (ms_from_timestamp(t.trade.time, field="t"), t.trade.trade_id) for t in page.trades
            ]
            token = page.next_page_token
            if not token:
                break
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetTrades(
                vwap_pb2.GetTradesRequest(
                    symbol="BTC",
                    start_time=timestamp_from_ms(start),
                    end_time=timestamp_from_ms(end + 1),
                    page_size=7,
                    page_token=_first_token(
                        await stub.GetTrades(
                            vwap_pb2.GetTradesRequest(
                                symbol="BTC",
                                start_time=timestamp_from_ms(start),
                                end_time=timestamp_from_ms(end),
                                page_size=7,
                            )
                        )
                    ),
                )
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert seen == expected
    assert pages == -(-len(expected) // 7) or pages == len(expected) // 7 + 1


def _first_token(page: vwap_pb2.GetTradesResponse) -> str:
    assert page.next_page_token
    return page.next_page_token


async def test_list_symbols_reports_first_last_and_verified(
    start_vwap: VwapStarter, store_url: str
) -> None:
    """ListSymbols lists symbols with trades alphabetically with their first/last trade times,
    including one whose daily bucket is not materialised yet (TimescaleDB; here its rows are
    removed by hand), not one without trades."""
    await _seed(
        store_url,
        [
            Trade("ETH", 1, BASE + 5, Decimal(1), Decimal(1)),
            Trade("BTC", 1, BASE + 10, Decimal(1), Decimal(1)),
            Trade("BTC", 2, BASE + 3 * DAY_MS, Decimal(1), Decimal(1)),
            Trade("SOL", 1, BASE + 20, Decimal(1), Decimal(1)),
        ],
    )
    async with await psycopg.AsyncConnection.connect(store_url) as conn:
        await conn.execute(
            "INSERT INTO symbols (symbol, verified_until, verified_from) VALUES ('BTC', %s, %s)",
            (dt_from_ms(BASE + 99), dt_from_ms(BASE + 7)),
        )
        for symbol in ("XRP", "SOL"):
            await conn.execute("INSERT INTO symbols VALUES (%s, %s)", (symbol, dt_from_ms(BASE)))
        await conn.execute("DELETE FROM trade_buckets_1d WHERE symbol = 'SOL'")
        await conn.commit()
    async with start_vwap() as (_, stub):
        listing = await stub.ListSymbols(vwap_pb2.ListSymbolsRequest())
    got = [
        (
            s.symbol,
            ms_from_timestamp(s.first_trade_time, field="f"),
            ms_from_timestamp(s.last_trade_time, field="l"),
            s.HasField("verified_until"),
        )
        for s in listing.symbols
    ]
    assert got == [
        ("BTC", BASE + 10, BASE + 3 * DAY_MS, True),
        ("ETH", BASE + 5, BASE + 5, False),
        ("SOL", BASE + 20, BASE + 20, True),
    ]
    btc = listing.symbols[0]
    assert ms_from_timestamp(btc.verified_from, field="v") == BASE + 7
    assert ms_from_timestamp(btc.verified_until, field="v") == BASE + 99


async def test_a_database_outage_is_unavailable_within_seconds(
    start_vwap: VwapStarter, store_url: str
) -> None:
    """With the database away, ListSymbols, GetTrades and GetVwapSeries end UNAVAILABLE saying
    to retry, well within a 20 s deadline (they waited the pool's 30 s, so such a client saw
    DEADLINE_EXCEEDED), and health is NOT_SERVING; once it is back they answer again and health
    is SERVING."""
    await _seed(store_url, [Trade("BTC", 1, BASE + 10, Decimal(2), Decimal(3))])
    trades = vwap_pb2.GetTradesRequest(symbol="BTC", start_time=_ts(BASE), end_time=_ts(BASE + 60))
    series = vwap_pb2.GetVwapSeriesRequest(
        symbol="BTC", start_time=_ts(BASE + 60_000), end_time=_ts(BASE + 120_000)
    )
    async with start_vwap() as (running, stub):
        address = running.address
        assert len((await stub.ListSymbols(vwap_pb2.ListSymbolsRequest())).symbols) == 1
        async with database_away(store_url):
            # More calls than the pool has connections: the first ones fail on cut sessions,
            # the others wait for a connection the pool cannot make.
            calls: list[Any] = []
            for _ in range(10):
                calls.append(stub.ListSymbols(vwap_pb2.ListSymbolsRequest(), timeout=20))
                calls.append(stub.GetTrades(trades, timeout=20))
                calls.append(stub.GetVwapSeries(series, timeout=20).read())
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
            health_away = await wait_for_health(address, NOT_SERVING)
        health_back = await wait_for_health(address, SERVING)
        refused = {
            (o.code(), o.details()) if isinstance(o, grpc.aio.AioRpcError) else repr(o)
            for o in outcomes
        }
        for _ in range(60):  # the pool reconnects in the background
            try:
                listing = await stub.ListSymbols(vwap_pb2.ListSymbolsRequest(), timeout=20)
                break
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.5)
    assert refused == {(grpc.StatusCode.UNAVAILABLE, "the trade store is unavailable, retry")}
    assert [s.symbol for s in listing.symbols] == ["BTC"]
    assert (health_away, health_back) == (NOT_SERVING, SERVING)


async def test_the_store_is_used_again_within_seconds_after_a_long_outage(
    start_vwap: VwapStarter, store_url: str
) -> None:
    """The database away for 20 s while calls fail on it: once it is back, ListSymbols
    answers within seconds. (The pool's attempts to replace its lost connections used to wait
    1, 2, 4, 8, 16 s... apart, so it came back about 11 s after the database here, up to a
    minute after a longer outage, while health already said SERVING.)"""
    await _seed(store_url, [Trade("BTC", 1, BASE + 10, Decimal(2), Decimal(3))])
    loop = asyncio.get_running_loop()
    async with start_vwap() as (_, stub):
        async with database_away(store_url):
            away_until = loop.time() + 20
            while loop.time() < away_until:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await stub.ListSymbols(vwap_pb2.ListSymbolsRequest(), timeout=20)
                await asyncio.sleep(0.5)
        back = loop.time()
        while True:
            try:
                listing = await stub.ListSymbols(vwap_pb2.ListSymbolsRequest(), timeout=20)
                break
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.2)
        answered_after_s = loop.time() - back
    assert [s.symbol for s in listing.symbols] == ["BTC"]
    assert answered_after_s < 8, answered_after_s


def _ts(ms: int) -> Timestamp:
    return timestamp_from_ms(ms)


_BAD: list[tuple[str, Any, grpc.StatusCode, str]] = [
    (
        "GetVwap",
        vwap_pb2.GetVwapRequest(symbol="NOPE", end_time=_ts(BASE)),
        grpc.StatusCode.NOT_FOUND,
        "symbol NOPE has no trades: ListSymbols lists",
    ),
    (
        "GetVwap",
        vwap_pb2.GetVwapRequest(symbol="BTC", window=Duration()),
        grpc.StatusCode.INVALID_ARGUMENT,
        "window must be positive",
    ),
    (
        "GetVwap",
        vwap_pb2.GetVwapRequest(symbol="BTC", window=duration_from_ms(32 * DAY_MS)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "at most",
    ),
    (
        "GetVwap",
        vwap_pb2.GetVwapRequest(symbol="btc"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "upper-case",
    ),
    (
        "GetVwap",
        vwap_pb2.GetVwapRequest(symbol="BTC", end_time=Timestamp(seconds=1, nanos=5)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "whole millisecond",
    ),
    (
        "GetVwap",
        vwap_pb2.GetVwapRequest(symbol="BTC", end_time=Timestamp(seconds=-62_135_596_800)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "before 0001-01-01",
    ),
    (
        "GetTrades",
        vwap_pb2.GetTradesRequest(
            symbol="BTC", start_time=_ts(BASE), end_time=Timestamp(seconds=253_402_300_800)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "9999-12-31",
    ),
    (
        "GetVwapSeries",
        vwap_pb2.GetVwapSeriesRequest(symbol="BTC", end_time=_ts(BASE)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "start_time is required",
    ),
    (
        "GetVwapSeries",
        vwap_pb2.GetVwapSeriesRequest(symbol="BTC", start_time=_ts(BASE)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "end_time is required",
    ),
    (
        "GetTrades",
        vwap_pb2.GetTradesRequest(symbol="BTC", start_time=_ts(BASE)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "end_time is required",
    ),
    (
        "GetVwapSeries",
        vwap_pb2.GetVwapSeriesRequest(symbol="BTC", start_time=_ts(BASE), end_time=_ts(BASE - 1)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "before start_time",
    ),
    (
        "GetVwapSeries",
        vwap_pb2.GetVwapSeriesRequest(
            symbol="BTC",
            start_time=_ts(BASE),
            end_time=_ts(BASE + DAY_MS),
            step=duration_from_ms(1),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "maximum",
    ),
    (
        "GetVwapSeries",
        vwap_pb2.GetVwapSeriesRequest(
            symbol="BTC", start_time=_ts(BASE), end_time=_ts(BASE), step=duration_from_ms(-5)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "step",
    ),
    (
        "GetVwapSeries",
        vwap_pb2.GetVwapSeriesRequest(symbol="NOPE", start_time=_ts(BASE), end_time=_ts(BASE)),
        grpc.StatusCode.NOT_FOUND,
        "symbol NOPE has no trades: ListSymbols lists",
    ),
    (
        "GetVwapSeries",
        vwap_pb2.GetVwapSeriesRequest(
            symbol="BTC",
            start_time=Timestamp(seconds=-62_135_596_800 + 60),
            end_time=Timestamp(seconds=-62_135_596_800 + 120),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "use a later start_time",
    ),
    (
        "GetTrades",
        vwap_pb2.GetTradesRequest(
            symbol="BTC", start_time=_ts(BASE), end_time=_ts(BASE + 1), page_size=10_001
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "page_size",
    ),
    (
        "GetTrades",
        vwap_pb2.GetTradesRequest(symbol="BTC", start_time=_ts(BASE), end_time=_ts(BASE)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "end_time must be after",
    ),
    (
        "GetTrades",
        vwap_pb2.GetTradesRequest(
            symbol="BTC", start_time=_ts(BASE), end_time=_ts(BASE + 1), page_token="xyz"
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "page_token",
    ),
    (
        "GetTrades",
        vwap_pb2.GetTradesRequest(symbol="NOPE", start_time=_ts(BASE), end_time=_ts(BASE + 1)),
        grpc.StatusCode.NOT_FOUND,
        "symbol NOPE has no trades: ListSymbols lists",
    ),
]


async def _call(stub: Any, method: str, request: Any) -> None:
    call = getattr(stub, method)(request)
    if method == "GetVwapSeries":
        _ = [r async for r in call]
    else:
        await call


async def test_bad_requests_get_the_right_codes(start_vwap: VwapStarter, store_url: str) -> None:
    """Unknown symbols are NOT_FOUND; bad windows, steps, sizes and tokens INVALID_ARGUMENT."""
    await _seed(store_url, [Trade("BTC", 1, BASE, Decimal(1), Decimal(1))])
    async with start_vwap() as (_, stub):
        for method, request, code, words in _BAD:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _call(stub, method, request)
            assert (method, err.value.code()) == (method, code)
            assert words in (err.value.details() or "")


async def test_empty_window_has_no_vwap(start_vwap: VwapStarter, store_url: str) -> None:
    """A known symbol with no trades in the window: count 0, notional 0, vwap unset."""
    await _seed(store_url, [Trade("BTC", 1, BASE, Decimal(1), Decimal(1))])
    async with start_vwap() as (_, stub):
        response = await stub.GetVwap(
            vwap_pb2.GetVwapRequest(symbol="BTC", end_time=_ts(BASE), window=duration_from_ms(5))
        )
    assert (response.point.trade_count, response.point.notional) == (0, "0")
    assert not response.point.HasField("vwap")


async def test_cached_window_is_invalidated_by_a_correction(
    start_vwap: VwapStarter, store_url: str, processor: FakeProcessor
) -> None:
    """A cached closed window keeps its value until the correction event arrives, then the
    corrected value is returned."""
    old = Trade("BTC", 7, BASE + 30_000, Decimal("100"), Decimal("2"))
    await _seed(store_url, [old, Trade("BTC", 8, BASE + 40_000, Decimal("110"), Decimal("1"))])
    request = vwap_pb2.GetVwapRequest(
        symbol="BTC", end_time=_ts(BASE + MINUTE_MS), window=duration_from_ms(MINUTE_MS)
    )
    async with start_vwap() as (running, stub):
        first = await stub.GetVwap(request)
        assert first.point.notional == "310"
        assert len(running.service.cache) == 1
        new = Trade("BTC", 7, BASE + 30_000, Decimal("101"), Decimal("2"))
        event = await processor.correct("updated", old, new, release=False)
        stale = await stub.GetVwap(request)
        assert stale.point.notional == "310"  # served from the cache: the event is not out yet
        await processor.release([event])
        await running.follower.wait_for(event.sequence)
        fresh = await stub.GetVwap(request)
        assert fresh.point.notional == "312"
        assert Decimal(fresh.point.vwap) == vwap_quotient(Decimal(312), Decimal(3))


async def test_deadline_is_honoured(start_vwap: VwapStarter, store_url: str) -> None:
    """A request whose deadline is already gone fails with DEADLINE_EXCEEDED, not a hang."""
    await _seed(store_url, [Trade("BTC", 1, BASE, Decimal(1), Decimal(1))])
    async with start_vwap() as (_, stub):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetVwap(vwap_pb2.GetVwapRequest(symbol="BTC"), timeout=0.0001)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_statement_timeout_follows_the_deadline(
    start_vwap: VwapStarter, store_url: str
) -> None:
    """A query blocked in the database is cancelled when the call's deadline passes."""
    await _seed(store_url, [Trade("BTC", 1, BASE, Decimal(1), Decimal(1))])
    async with start_vwap() as (_, stub):
        async with await psycopg.AsyncConnection.connect(store_url) as locker:
            await locker.execute("LOCK TABLE trades IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetVwap(vwap_pb2.GetVwapRequest(symbol="BTC"), timeout=0.5)
            await asyncio.sleep(0.3)
            # A fresh view: within a transaction PostgreSQL keeps the first one.
            await locker.execute("SELECT pg_stat_clear_snapshot()")
            cur = await locker.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                " AND backend_type = 'client backend'"  # not autovacuum
            )
            assert await cur.fetchone() == (0,)
            await locker.rollback()
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        after = await stub.GetVwap(vwap_pb2.GetVwapRequest(symbol="BTC", end_time=_ts(BASE + 1)))
        assert after.point.trade_count == 1


async def test_reads_after_the_server_cut_every_session_succeed(
    start_vwap: VwapStarter, store_url: str
) -> None:
    """PostgreSQL restarted (every session cut) while the service was idle: once it is back,
    GetVwap and the other reads answer at once. The batch lanes kept their connections and
    failed the first batches UNAVAILABLE on them, and pooled connections the first reads."""
    symbol = next(_symbols)
    trades = [Trade(symbol, i, BASE + i * 1_000, Decimal(100 + i), Decimal(1)) for i in range(5)]
    async with await psycopg.AsyncConnection.connect(store_url) as conn:
        await insert_trades(conn, trades)
        await conn.commit()
    requests = [
        vwap_pb2.GetVwapRequest(
            symbol=symbol, end_time=_ts(BASE + end), window=duration_from_ms(end)
        )
        for end in range(1, 6_000, 60)
    ]
    async with start_vwap(cache_size=0) as (_, stub):
        before = await asyncio.gather(*(stub.GetVwap(r) for r in requests))
        name = psycopg.conninfo.conninfo_to_dict(store_url)["dbname"]
        admin = psycopg.conninfo.make_conninfo(store_url, dbname="postgres")
        async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
        after = await asyncio.gather(*(stub.GetVwap(r) for r in requests))
        listing = await stub.ListSymbols(vwap_pb2.ListSymbolsRequest())
    assert [r.point for r in after] == [r.point for r in before]
    for request, response in zip(requests, after, strict=True):
        end = ms_from_timestamp(request.end_time, field="end_time")
        _check_point(response.point, trades, end, end - BASE)
    assert symbol in [s.symbol for s in listing.symbols]


async def test_a_series_is_planned_and_summed_off_the_event_loop(
    start_vwap: VwapStarter, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GetVwapSeries's CPU-heavy parts (a series at the point limit takes a good part of a
    second) run in worker threads, so the event loop keeps answering other calls meanwhile;
    the points are the same brute-force sums."""
    symbol = next(_symbols)
    trades = [Trade(symbol, i, BASE + i * 7_000, Decimal(10 + i), Decimal(2)) for i in range(9)]
    await _seed(store_url, trades)
    threads: list[int] = []

    def recorded(function: Any) -> Any:
        def run(*args: Any) -> Any:
            threads.append(threading.get_ident())
            return function(*args)

        return run

    monkeypatch.setattr(vwap.service, "series_plan", recorded(vwap.service.series_plan))
    monkeypatch.setattr(vwap.service, "series_sums", recorded(vwap.service.series_sums))
    request = vwap_pb2.GetVwapSeriesRequest(
        symbol=symbol,
        start_time=_ts(BASE + 10_000),
        end_time=_ts(BASE + 60_000),
        step=duration_from_ms(10_000),
        window=duration_from_ms(20_000),
    )
    async with start_vwap() as (_, stub):
        points = [response.point async for response in stub.GetVwapSeries(request)]
    assert len(threads) == 2
    assert threading.get_ident() not in threads  # the test and the service share one loop
    assert len(points) == 6
    for point in points:
        end = ms_from_timestamp(point.end_time, field="end_time")
        _check_point(point, trades, end, 20_000)
