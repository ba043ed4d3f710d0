"""Ready-to-paste ``grpcurl`` commands, one per RPC of the stack's gRPC services."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _command(address: str, method: str, body: Mapping[str, object]) -> str:
    data = shlex.quote(json.dumps(body, separators=(",", ":")))
    return f"grpcurl -plaintext -d {data} {address} trading.v1.{method}"


def grpcurl_commands(
    addresses: dict[str, str], *, symbol: str = "BTC", now: datetime | None = None
) -> list[str]:
    """One command per RPC of the proxy, processor and VWAP service at ``addresses``.

    Time ranges are whole seconds around ``now`` (default: the current time), so they are
    valid as printed; the Backfill range ends two minutes ago, before the settle delay.
    """
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    last_minute = {"symbol": symbol, "startTime": _time(now - timedelta(minutes=1))}
    last_minute["endTime"] = _time(now)
    proxy, processor, vwap = addresses["proxy"], addresses["processor"], addresses["vwap"]
    return [
        _command(proxy, "ProxyService/FetchTrades", last_minute),
        _command(proxy, "ProxyService/GetStats", {}),
        _command(processor, "ProcessorService/StreamEvents", {"symbols": [symbol]}),
        _command(
            processor,
            "ProcessorService/Backfill",
            {
                "symbol": symbol,
                "startTime": _time(now - timedelta(minutes=3)),
                "endTime": _time(now - timedelta(minutes=2)),
            },
        ),
        _command(
            processor,
            "ProcessorService/GetCoverage",
            {
                "symbol": symbol,
                "startTime": _time(now - timedelta(minutes=5)),
                "endTime": _time(now),
            },
        ),
        _command(processor, "ProcessorService/GetProcessorStats", {}),
        _command(vwap, "VwapService/GetVwap", {"symbol": symbol}),
        _command(
            vwap,
            "VwapService/GetVwapSeries",
            {
                "symbol": symbol,
                "startTime": _time(now - timedelta(minutes=5)),
                "endTime": _time(now),
                "step": "60s",
                "window": "300s",
            },
        ),
        _command(vwap, "VwapService/StreamVwap", {"symbols": [symbol], "step": "10s"}),
        _command(vwap, "VwapService/GetTrades", {**last_minute, "pageSize": 10}),
        _command(vwap, "VwapService/ListSymbols", {}),
    ]
