"""One HTTP request to the provider's REST API: a validated page of trades, or a typed error.

Parsing is exact: ``json.loads(body, parse_float=Decimal)``, and integers and strings become
``Decimal`` through their text, so no price or quantity ever passes through float. Timeouts,
retries and hedging are the caller's business (``retrying``); this module sends one request.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import aiohttp

from proxy.errors import (
    MalformedResponse,
    ProviderBadRequest,
    ProviderConnectionError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderServerError,
    UnknownSymbol,
)
from proxy.paging import PAGE_SIZE, PageOutOfPlan, PageRequest, check_page
from tradekit.domain import MAX_TRADE_ID, Trade
from tradekit.money import InvalidDecimal, parse_positive
from tradekit.wire import MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS

_MESSAGE_LIMIT = 300


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a number")


def _integer(item: Mapping[str, Any], key: str, *, low: int, high: int) -> int:
    value = item.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedResponse(f"{key} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise MalformedResponse(f"{key} must be in [{low}, {high}], got {value}")
    return value


def _positive_decimal(item: Mapping[str, Any], key: str) -> Decimal:
    value = item.get(key)
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise MalformedResponse(f"{key} must be a number or a decimal string, got {value!r}")
    try:
        return parse_positive(str(value), field=key)
    except InvalidDecimal as exc:
        raise MalformedResponse(str(exc)) from None


def parse_trade(item: object, symbol: str) -> Trade:
    """One provider trade object as a domain Trade; MalformedResponse when it is not one."""
    if not isinstance(item, dict):
        raise MalformedResponse(f"a trade must be a JSON object, got {item!r}")
    ticker = item.get("ticker")
    if ticker != symbol:
        raise MalformedResponse(f"trade ticker {ticker!r} is not the requested {symbol!r}")
    return Trade(
        symbol=symbol,
        trade_id=_integer(item, "tradeId", low=0, high=MAX_TRADE_ID),
        ts_ms=_integer(item, "ts", low=MIN_TIMESTAMP_MS, high=MAX_TIMESTAMP_MS),
        price=_positive_decimal(item, "price"),
        quantity=_positive_decimal(item, "quantity"),
    )


def parse_page(body: bytes, symbol: str) -> list[Trade]:
    """The trades of a 200 body (a JSON array of trade objects), read exactly."""
    try:
        data = json.loads(body, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponse(f"body is not JSON: {exc}") from None
    if not isinstance(data, list):
        raise MalformedResponse(f"body must be a JSON array, got {type(data).__name__}")
    return [parse_trade(item, symbol) for item in data]


def parse_retry_after(value: str | None, *, now_s: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date), if usable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        delta = Decimal(text)
    except ArithmeticError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - now_s)
    if not delta.is_finite():
        return None
    return max(0.0, float(delta))


def error_message(body: bytes) -> str:
    """The provider's error text: a JSON ``error``/``message`` field, else the raw body."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("error", "message", "detail"):
            if isinstance(data.get(key), str):
                text = data[key]
                break
    return text[:_MESSAGE_LIMIT] or "(no message)"


class ProviderClient:
    """Sends ``GET /trades`` over a shared session; knows nothing of retries."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._url = base_url.rstrip("/") + "/trades"

    async def fetch_page(self, symbol: str, request: PageRequest) -> list[Trade]:
        """One request for ``symbol`` over ``request``'s range: its validated trades."""
        params = {
            "ticker": symbol,
            "startTime": str(request.start_ms),
            "endTime": str(request.end_ms),
        }
        try:
            async with self._session.get(self._url, params=params) as response:
                body = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise ProviderConnectionError(f"{type(exc).__name__}: {exc}") from None
        except aiohttp.ClientResponseError as exc:  # not HTTP: a broken or confused server
            raise ProviderConnectionError(f"malformed HTTP response: {exc.message}") from None
        if status == 200:
            trades = parse_page(body, symbol)
            try:
                check_page(request, trades, PAGE_SIZE)
            except PageOutOfPlan as exc:
                raise MalformedResponse(str(exc)) from None
            return trades
        message = error_message(body)
        if status == 429:
            raise ProviderRateLimited(parse_retry_after(retry_after, now_s=time.time()))
        if status == 404:
            raise UnknownSymbol(status, message)
        if status == 400:
            raise ProviderBadRequest(status, message)
        if status == 408 or status >= 500:
            raise ProviderServerError(status, message)
        raise ProviderRejected(status, message)
