"""``python -m devstack.accuracy``: run the stack against a faulty simulator and grade it exactly.

The stack runs in a temporary directory on free ports. Trading runs for ``--duration`` seconds
(real time); then the harness waits until reconciliation has verified every symbol past the end
of trading, and compares over each symbol's verified range [first ledger window, end of trading):

* the stored trades (PostgreSQL, exact ``Decimal``) with ``/truth/trades``: missing, extra,
  differing;
* ``VwapService.GetVwap`` every 10 s of the range (window: 5 minutes, clipped to the range)
  with ``/truth/vwap``: notional, volume and count equal, vwap equal to the truth's sums
  divided and rounded per the contract (30 digits, half-even), point marked verified;
* frames quarantined, trade time to its window's verification (ledger ``updated_time``), and
  the simulator's REST requests per 100 true trades.

Exit status 0 only when everything is exact and reconciliation finished in time.
"""

from __future__ import annotations

import argparse
import bisect
import json
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import grpc
import psycopg
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from trading.v1 import processor_pb2, processor_pb2_grpc, vwap_pb2, vwap_pb2_grpc

from devstack.exactness import (
    AccuracyReport,
    SymbolAccuracy,
    TradeRow,
    VwapFigures,
    diff_trades,
    percentile,
    render_report,
    vwap_exact,
)
from devstack.postgres import TEST_SETTINGS
from devstack.stack import FREE_PORTS, Stack
from simulator.profiles import PROFILE_NAMES, get_profile

VWAP_WINDOW_MS: Final = 300_000
VWAP_STEP_MS: Final = 10_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_RPC_TIMEOUT_S: Final = 10.0

#: Reconciliation tuned to finish seconds after trading ends (REST lag 2 s < settle delay).
PROCESSOR_ENV: Final = {
    "RECONCILE_WINDOW": "5s",
    "SETTLE_DELAY": "4s",
    "RECONCILE_INTERVAL": "1s",
    "FEED_STALE_TIMEOUT": "3s",
    "FEED_BACKOFF_MAX": "500ms",
    "PROXY_ATTEMPT_TIMEOUT_FLOOR": "500ms",
    "PROXY_ATTEMPT_TIMEOUT_CEILING": "3s",
    "PROXY_BACKOFF_MAX": "1s",
}


def simulator_env(profile: str, seed: int) -> dict[str, str]:
    """The profile's fault rates, with REST latencies capped so reconciliation keeps up."""
    rest = get_profile(profile).rest
    return {
        "SIM_SEED": str(seed),
        "SIM_REST_LATENCY_MEDIAN_MS": str(min(rest.latency_median_ms, 200.0)),
        "SIM_REST_SLOW_MS": str(min(rest.slow_ms, 1500.0)),
        "SIM_REST_HANG_MS": str(min(rest.hang_ms, 5000.0)),
        "SIM_REST_RETRY_AFTER_S": str(min(rest.retry_after_s, 1)),
    }


def _timestamp(ms: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp


def _duration(ms: int) -> Duration:
    span = Duration()
    span.FromMilliseconds(ms)
    return span


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


class Truth:
    """The simulator's ground truth and counters over HTTP."""

    def __init__(self, base_url: str) -> None:
        self._base = base_url.rstrip("/")

    def _get(self, path: str, **params: str | int) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self._base}{path}?{query}", timeout=30) as answer:
            return json.loads(answer.read())

    def stats(self) -> dict[str, Any]:
        """``GET /stats``."""
        result: dict[str, Any] = self._get("/stats")
        return result

    def tickers(self) -> list[str]:
        """``GET /tickers``."""
        return [str(t) for t in self._get("/tickers")]

    def trades(self, ticker: str, start_ms: int, end_ms: int) -> list[TradeRow]:
        """Every true trade of ``ticker`` in [start_ms, end_ms)."""
        rows = self._get("/truth/trades", ticker=ticker, startTime=start_ms, endTime=end_ms)
        return [
            TradeRow(int(r["tradeId"]), int(r["ts"]), Decimal(r["price"]), Decimal(r["quantity"]))
            for r in rows
        ]

    def vwap(self, ticker: str, end_ms: int, window_ms: int) -> tuple[Decimal, Decimal, int]:
        """Exact (notional, volume, count) of ``ticker`` over [end - window, end)."""
        r = self._get("/truth/vwap", ticker=ticker, endTime=end_ms, windowMs=window_ms)
        return Decimal(r["notional"]), Decimal(r["volume"]), int(r["count"])


def stored_trades(database_url: str, symbol: str, start_ms: int, end_ms: int) -> list[TradeRow]:
    """The trades the processor stored for ``symbol`` in [start_ms, end_ms)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT trade_id, ts, price, quantity FROM trades"
            " WHERE symbol = %s AND ts >= %s AND ts < %s",
            (
                symbol,
                _EPOCH + timedelta(milliseconds=start_ms),
                _EPOCH + timedelta(milliseconds=end_ms),
            ),
        ).fetchall()
    return [TradeRow(int(i), _ms(ts), Decimal(p), Decimal(q)) for i, ts, p, q in rows]


@dataclass(frozen=True, slots=True)
class Coverage:
    """A symbol's ledger: verified windows (start, end, verified at) and its watermark."""

    verified: tuple[tuple[int, int, int], ...]
    first_start_ms: int | None
    verified_until_ms: int | None


class Services:
    """Stubs of the processor and the VWAP service."""

    def __init__(self, processor_address: str, vwap_address: str) -> None:
        self._channels = [grpc.insecure_channel(a) for a in (processor_address, vwap_address)]
        self.processor = processor_pb2_grpc.ProcessorServiceStub(self._channels[0])  # type: ignore[no-untyped-call]
        self.vwap = vwap_pb2_grpc.VwapServiceStub(self._channels[1])  # type: ignore[no-untyped-call]

    def coverage(self, symbol: str, start_ms: int, end_ms: int) -> Coverage:
        """``GetCoverage`` over [start_ms, end_ms)."""
        answer = self.processor.GetCoverage(
            processor_pb2.GetCoverageRequest(
                symbol=symbol, start_time=_timestamp(start_ms), end_time=_timestamp(end_ms)
            ),
            timeout=_RPC_TIMEOUT_S,
        )
        windows = list(answer.windows)
        return Coverage(
            verified=tuple(
                (
                    w.window.start_time.ToMilliseconds(),
                    w.window.end_time.ToMilliseconds(),
                    w.updated_time.ToMilliseconds(),
                )
                for w in windows
                if w.state == processor_pb2.WINDOW_STATE_VERIFIED
            ),
            first_start_ms=windows[0].window.start_time.ToMilliseconds() if windows else None,
            verified_until_ms=(
                answer.verified_until.ToMilliseconds()
                if answer.HasField("verified_until")
                else None
            ),
        )

    def vwap_point(self, symbol: str, end_ms: int, window_ms: int) -> tuple[VwapFigures, bool]:
        """``GetVwap``: the figures and whether the point says it is verified."""
        point = self.vwap.GetVwap(
            vwap_pb2.GetVwapRequest(
                symbol=symbol, end_time=_timestamp(end_ms), window=_duration(window_ms)
            ),
            timeout=_RPC_TIMEOUT_S,
        ).point
        figures = VwapFigures(
            Decimal(point.notional),
            Decimal(point.volume),
            point.trade_count,
            Decimal(point.vwap) if point.HasField("vwap") else None,
        )
        return figures, point.verified

    def frames_quarantined(self) -> int:
        """The processor's quarantine counter."""
        stats = self.processor.GetProcessorStats(
            processor_pb2.GetProcessorStatsRequest(), timeout=_RPC_TIMEOUT_S
        )
        return int(stats.frames_quarantined)

    def close(self) -> None:
        """Close the channels."""
        for channel in self._channels:
            channel.close()


def wait_verified(
    services: Services, symbols: Sequence[str], target_ms: int, timeout_s: float
) -> bool:
    """Poll ``GetCoverage`` until every symbol is verified up to ``target_ms``."""
    deadline = time.monotonic() + timeout_s
    while True:
        marks = [services.coverage(s, target_ms - 1, target_ms).verified_until_ms for s in symbols]
        if all(m is not None and m >= target_ms for m in marks):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(1.0)


def _verified_at(coverage: Coverage, ts_ms: int) -> int | None:
    """When the verified window holding ``ts_ms`` was verified."""
    starts = [start for start, _, _ in coverage.verified]
    i = bisect.bisect_right(starts, ts_ms) - 1
    if i < 0:
        return None
    start, end, at = coverage.verified[i]
    return at if start <= ts_ms < end else None


def grade_symbol(
    symbol: str,
    *,
    truth: Truth,
    services: Services,
    database_url: str,
    run_start_ms: int,
    end_ms: int,
    latencies: list[int],
) -> SymbolAccuracy:
    """Compare one symbol over its verified range; append its trades' latencies."""
    coverage = services.coverage(symbol, run_start_ms - 3_600_000, end_ms)
    start_ms = coverage.first_start_ms if coverage.first_start_ms is not None else end_ms
    end_ms = min(end_ms, coverage.verified_until_ms or start_ms)
    true_trades = truth.trades(symbol, start_ms, end_ms)
    diff = diff_trades(true_trades, stored_trades(database_url, symbol, start_ms, end_ms))
    for trade in true_trades:
        at = _verified_at(coverage, trade.ts_ms)
        if at is not None:
            latencies.append(at - trade.ts_ms)
    points = exact = 0
    examples: list[str] = []
    ends = [*range(start_ms + VWAP_STEP_MS, end_ms, VWAP_STEP_MS), end_ms]
    for point_end in ends if end_ms > start_ms else []:
        window = min(VWAP_WINDOW_MS, point_end - start_ms)
        notional, volume, count = truth.vwap(symbol, point_end, window)
        figures, verified = services.vwap_point(symbol, point_end, window)
        points += 1
        if verified and vwap_exact(figures, notional, volume, count):
            exact += 1
        elif len(examples) < 3:
            examples.append(
                f"vwap end={point_end} window={window} verified={verified} got {figures}"
                f" truth notional={notional} volume={volume} count={count}"
            )
    return SymbolAccuracy(symbol, start_ms, end_ms, diff, points, exact, tuple(examples))


def run_accuracy(
    *,
    profile: str,
    duration_s: float,
    seed: int = 1,
    timeout_s: float = 120.0,
    data_dir: Path | None = None,
    progress: bool = True,
) -> AccuracyReport:
    """Run the stack for ``duration_s`` seconds of trading and grade it against the truth."""
    with tempfile.TemporaryDirectory(prefix="accuracy-") as temp:
        stack = Stack(
            data_dir or Path(temp),
            profile=profile,
            sim_env=simulator_env(profile, seed),
            extra_env=PROCESSOR_ENV,
            ports=FREE_PORTS,
            postgres_settings=TEST_SETTINGS,
        )
        with stack:
            assert stack.simulator_url is not None
            truth = Truth(stack.simulator_url)
            services = Services(stack.addresses["processor"], stack.addresses["vwap"])
            try:
                return _grade_run(stack, truth, services, profile, duration_s, timeout_s, progress)
            finally:
                services.close()


def _grade_run(
    stack: Stack,
    truth: Truth,
    services: Services,
    profile: str,
    duration_s: float,
    timeout_s: float,
    progress: bool,
) -> AccuracyReport:
    run_start_ms = int(truth.stats()["start_ms"])
    symbols = truth.tickers()
    _say(progress, f"trading for {duration_s:g} s (profile {profile}), logs in {stack.log_dir}")
    time.sleep(duration_s)
    end_ms = int(truth.stats()["now_ms"])
    _say(progress, f"trading window over; waiting up to {timeout_s:g} s for reconciliation")
    reconciled = wait_verified(services, symbols, end_ms, timeout_s)
    rest_requests = int(truth.stats()["rest"]["requests_total"])
    latencies: list[int] = []
    results = tuple(
        grade_symbol(
            s,
            truth=truth,
            services=services,
            database_url=stack.database_url,
            run_start_ms=run_start_ms,
            end_ms=end_ms,
            latencies=latencies,
        )
        for s in symbols
    )
    true_total = sum(r.trades.true_trades for r in results)
    return AccuracyReport(
        profile=profile,
        duration_s=duration_s,
        reconciled=reconciled,
        symbols=results,
        frames_quarantined=services.frames_quarantined(),
        verified_latency_p50_ms=percentile(latencies, 50),
        verified_latency_p99_ms=percentile(latencies, 99),
        rest_requests=rest_requests,
        rest_requests_per_100_trades=rest_requests / true_total * 100 if true_total else 0.0,
    )


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m devstack.accuracy",
        description="Run the stack against the simulator and compare it with the ground truth.",
    )
    parser.add_argument("--profile", default="hostile", choices=PROFILE_NAMES)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of trading")
    parser.add_argument("--seed", type=int, default=1, help="simulator seed")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for reconciliation"
    )
    parser.add_argument("--out", type=Path, help="write the report as JSON here")
    parser.add_argument(
        "--data-dir", type=Path, help="keep data and logs here instead of a temporary directory"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 when the run is exact, 1 otherwise."""
    args = build_parser().parse_args(argv)
    report = run_accuracy(
        profile=args.profile,
        duration_s=args.duration,
        seed=args.seed,
        timeout_s=args.timeout,
        data_dir=args.data_dir,
    )
    print(render_report(report))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return 0 if report.exact else 1


if __name__ == "__main__":
    sys.exit(main())
