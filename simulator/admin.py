"""Simulator-only endpoints (not part of the provider protocol, never faulty).

* `GET /stats`: counters (see `SimStats.snapshot`), plus `now_ms` and `start_ms`;
* `GET /truth/trades?ticker=T[&startTime=MS][&endTime=MS]`: every true trade with
  `startTime <= ts < endTime` (defaults: 0, no bound), no paging and no lag, in export form
  (`{"ticker", "ts", "tradeId", "price": "...", "quantity": "..."}`, decimal strings);
* `GET /truth/vwap?ticker=T[&endTime=MS][&windowMs=300000]`: exact window aggregate
  `{"notional", "volume", "vwap", "count"}` (endTime defaults to now);
* `GET /truth/export[?ticker=T]`: the truth as JSON lines (application/x-ndjson);
* `POST /truth/export`: write the truth to the configured truth file, answers
  `{"path", "count"}` (400 when no truth file is configured).
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from simulator.logfmt import get_logger, kv
from simulator.query import QueryError, int_param, json_error, ticker_param, time_range
from simulator.state import STATE
from simulator.trade import export_line
from simulator.truth import DEFAULT_WINDOW_MS, write_jsonl

log = get_logger("admin")


async def handle_stats(request: web.Request) -> web.Response:
    """`GET /stats`."""
    state = request.app[STATE]
    snapshot = state.stats.snapshot()
    snapshot["now_ms"] = state.clock()
    snapshot["start_ms"] = state.start_ms
    return web.json_response(snapshot)


async def handle_truth_trades(request: web.Request) -> web.Response:
    """`GET /truth/trades`."""
    state = request.app[STATE]
    try:
        ticker = ticker_param(request.query, state.truth)
        start, end = time_range(request.query, start_required=False)
    except QueryError as exc:
        return json_error(exc.status, exc.message)
    trades = state.truth.trades(ticker, start, end)
    body = "[" + ", ".join(export_line(trade) for trade in trades) + "]"
    return web.Response(text=body, content_type="application/json")


async def handle_truth_vwap(request: web.Request) -> web.Response:
    """`GET /truth/vwap`."""
    state = request.app[STATE]
    try:
        ticker = ticker_param(request.query, state.truth)
        end = int_param(request.query, "endTime", state.clock())
        window = int_param(request.query, "windowMs", DEFAULT_WINDOW_MS)
        assert end is not None
        assert window is not None
        if window <= 0:
            raise QueryError(400, "windowMs must be > 0")
    except QueryError as exc:
        return json_error(exc.status, exc.message)
    result = state.truth.vwap(ticker, end, window)
    payload = {"ticker": ticker, "endTime": end, "windowMs": window, **result.to_json()}
    return web.Response(text=json.dumps(payload), content_type="application/json")


async def handle_truth_export_get(request: web.Request) -> web.StreamResponse:
    """`GET /truth/export`: JSON lines."""
    state = request.app[STATE]
    tickers = None
    if "ticker" in request.query:
        try:
            tickers = [ticker_param(request.query, state.truth)]
        except QueryError as exc:
            return json_error(exc.status, exc.message)
    body = "".join(state.truth.export_lines(tickers))
    return web.Response(text=body, content_type="application/x-ndjson")


async def handle_truth_export_post(request: web.Request) -> web.Response:
    """`POST /truth/export`: write the configured truth file."""
    state = request.app[STATE]
    path = state.config.truth_file
    if path is None:
        return json_error(400, "no truth file configured (SIM_TRUTH_FILE)")
    count = await asyncio.to_thread(write_jsonl, path, state.truth.snapshot())
    log.info(kv("truth_exported", path=path, count=count))
    return web.json_response({"path": str(path), "count": count})
