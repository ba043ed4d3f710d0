"""The provider REST endpoints: `GET /trades` (slow, faulty, but true) and `GET /tickers`.

`GET /trades?ticker=T&startTime=MS[&endTime=MS]` answers a JSON array of at most 100 trades
with `startTime <= ts < endTime` (no endTime: up to now), sorted by (ts, tradeId), in the
same object form as the WebSocket frames. Only trades with `ts <= now - rest_lag_ms` are
visible (`now` taken when the answer is built, after the simulated latency).

More than 100 trades can share one millisecond (see the burst tape settings); the page is
then exactly the first 100 of that millisecond by tradeId. The protocol has no cursor
beyond `startTime`, so a client paging with an inclusive `startTime` cannot get past such a
millisecond through REST alone: this is kept on purpose, as real providers behave this way.

Validation comes first and is never faulty: missing ticker or bad times -> 400, unknown
ticker -> 404, both with `{"error": "..."}`. Then the request gets the next decision of the
seeded REST fault plan: latency, 5xx, 429 with `Retry-After` (seconds), or a hang of
`hang_ms` followed by 504 (clients are expected to time out first).
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from simulator.faults import RestOutcome
from simulator.logfmt import get_logger, kv
from simulator.query import QueryError, json_error, ticker_param, time_range
from simulator.state import STATE

log = get_logger("rest")


async def handle_trades(request: web.Request) -> web.Response:
    """`GET /trades`."""
    state = request.app[STATE]
    stats = state.stats.rest
    stats.enter()
    try:
        try:
            ticker = ticker_param(request.query, state.truth)
            start, end = time_range(request.query, start_required=True)
        except QueryError as exc:
            stats.by_outcome["bad_request" if exc.status == 400 else "not_found"] += 1
            stats.by_status[exc.status] += 1
            return json_error(exc.status, exc.message)
        decision = state.rest_plan.next()
        stats.by_outcome[decision.outcome.value] += 1
        if decision.delay_ms > 0:
            await asyncio.sleep(decision.delay_ms / 1000)
        stats.by_status[decision.status] += 1
        log.debug(
            kv(
                "rest_request",
                ticker=ticker,
                start=start,
                end=end,
                outcome=decision.outcome.value,
                status=decision.status,
                delay_ms=round(decision.delay_ms, 1),
            )
        )
        if decision.outcome is RestOutcome.TIMEOUT:
            return json_error(504, "gateway timeout")
        if decision.outcome is RestOutcome.ERROR:
            return json_error(decision.status, "internal error, please retry")
        if decision.outcome is RestOutcome.THROTTLED:
            return json_error(
                429, "too many requests", headers={"Retry-After": str(decision.retry_after_s)}
            )
        visible_until = state.clock() - state.config.rest_lag_ms
        page = state.truth.page(ticker, start, end, visible_until)
        body = b"[" + b", ".join(trade.frame for trade in page) + b"]"
        return web.Response(body=body, content_type="application/json")
    except asyncio.CancelledError:
        stats.cancelled += 1
        log.debug(kv("rest_cancelled", path=request.path_qs))
        raise
    finally:
        stats.leave()


async def handle_tickers(request: web.Request) -> web.Response:
    """`GET /tickers`: the JSON list of tickers."""
    state = request.app[STATE]
    return web.Response(text=json.dumps(list(state.tickers)), content_type="application/json")
