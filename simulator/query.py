"""Query-string validation shared by the HTTP handlers, and JSON error responses."""

from __future__ import annotations

import json
import re
from collections.abc import Container, Mapping

from aiohttp import web

_INTEGER = re.compile(r"^-?[0-9]{1,19}$")


class QueryError(Exception):
    """A request to answer with `status` and `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """`{"error": message}` with the given status."""
    return web.Response(
        status=status,
        text=json.dumps({"error": message}),
        content_type="application/json",
        headers=headers,
    )


def ticker_param(query: Mapping[str, str], known: Container[str]) -> str:
    """The `ticker` parameter: 400 when missing, 404 when unknown."""
    ticker = query.get("ticker", "")
    if not ticker:
        raise QueryError(400, "missing parameter 'ticker'")
    if ticker not in known:
        raise QueryError(404, f"unknown ticker {ticker!r}")
    return ticker


def int_param(query: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    """A non-negative integer parameter (400 when malformed or negative)."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not _INTEGER.match(raw):
        raise QueryError(400, f"parameter {name!r} must be an integer, got {raw!r}")
    value = int(raw)
    if value < 0:
        raise QueryError(400, f"parameter {name!r} must be >= 0, got {value}")
    return value


def required_int(query: Mapping[str, str], name: str) -> int:
    """A required non-negative integer parameter."""
    value = int_param(query, name)
    if value is None:
        raise QueryError(400, f"missing parameter {name!r}")
    return value


def time_range(query: Mapping[str, str], *, start_required: bool) -> tuple[int, int | None]:
    """`startTime` and optional `endTime` (must be > startTime)."""
    start = required_int(query, "startTime") if start_required else int_param(query, "startTime", 0)
    assert start is not None
    end = int_param(query, "endTime")
    if end is not None and end <= start:
        raise QueryError(400, f"endTime ({end}) must be > startTime ({start})")
    return start, end
