"""Opaque page tokens for GetTrades (pure): the last key plus a digest of the query's filter.

A token only continues the query that produced it; presented with another symbol or range it
is rejected, so a client can never silently skip or repeat trades.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from vwap.errors import InvalidRequest

MAX_PAGE_SIZE = 10_000
DEFAULT_PAGE_SIZE = 1_000


def page_size(requested: int) -> int:
    """The page size to use: ``requested``, or the default for 0; InvalidRequest otherwise."""
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= requested <= MAX_PAGE_SIZE:
        raise InvalidRequest(
            f"page_size must be between 1 and {MAX_PAGE_SIZE} (0 for {DEFAULT_PAGE_SIZE}), "
            f"got {requested}"
        )
    return requested


def _digest(symbol: str, start_ms: int, end_ms: int) -> str:
    return hashlib.sha256(f"{symbol}|{start_ms}|{end_ms}".encode()).hexdigest()[:16]


def encode_token(symbol: str, start_ms: int, end_ms: int, last: tuple[int, int]) -> str:
    """The token continuing after key ``last`` (ts_ms, trade_id) for this query."""
    body = {"f": _digest(symbol, start_ms, end_ms), "ts": last[0], "id": last[1]}
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, symbol: str, start_ms: int, end_ms: int) -> tuple[int, int] | None:
    """The key after which to continue, None for an empty token; InvalidRequest when the token
    is malformed or belongs to a different query."""
    if not token:
        return None
    invalid = InvalidRequest(
        "page_token is not a next_page_token of this query: repeat the query with the same "
        "symbol, start_time and end_time, or send an empty page_token to start over"
    )
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):  # RecursionError: nested too deep
        raise invalid from None
    if not isinstance(body, dict):
        raise invalid
    ts, trade_id, digest = body.get("ts"), body.get("id"), body.get("f")
    if not (type(ts) is int and type(trade_id) is int and isinstance(digest, str)):
        raise invalid
    if not (start_ms <= ts < end_ms and 0 <= trade_id < 2**63):  # a key this query returned
        raise invalid
    if digest != _digest(symbol, start_ms, end_ms):
        raise invalid
    return ts, trade_id
