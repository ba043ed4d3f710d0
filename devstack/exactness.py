"""Pure comparisons of what the system stored and answered with the simulator's ground truth.

No I/O here: the accuracy harness (:mod:`devstack.accuracy`) fetches both sides and these
functions compare them exactly (``Decimal`` values, never floats) and format the report.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, Final

#: Significant digits of a VWAP quotient, rounded half-even (the VwapService contract).
VWAP_DIGITS: Final = 30
_VWAP_CONTEXT: Final = decimal.Context(prec=VWAP_DIGITS, rounding=decimal.ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class TradeRow:
    """One trade as the truth or the store has it."""

    trade_id: int
    ts_ms: int
    price: Decimal
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class TradeDiff:
    """How a stored trade set differs from the true one (keyed by trade id)."""

    true_trades: int
    stored: int
    missing: int
    extra: int
    differing: int
    #: A few offending trade ids of each kind, for the investigation.
    examples: tuple[str, ...] = ()


def diff_trades(truth: Iterable[TradeRow], stored: Iterable[TradeRow]) -> TradeDiff:
    """Compare by trade id; ``differing`` counts same id with another time, price or quantity."""
    true_by_id = {t.trade_id: t for t in truth}
    stored_by_id = {t.trade_id: t for t in stored}
    missing = sorted(true_by_id.keys() - stored_by_id.keys())
    extra = sorted(stored_by_id.keys() - true_by_id.keys())
    differing = sorted(
        i for i in true_by_id.keys() & stored_by_id.keys() if true_by_id[i] != stored_by_id[i]
    )
    examples = (
        [f"missing {i}" for i in missing[:3]]
        + [f"extra {i}" for i in extra[:3]]
        + [f"differing {stored_by_id[i]} != {true_by_id[i]}" for i in differing[:3]]
    )
    return TradeDiff(
        true_trades=len(true_by_id),
        stored=len(stored_by_id),
        missing=len(missing),
        extra=len(extra),
        differing=len(differing),
        examples=tuple(examples),
    )


@dataclass(frozen=True, slots=True)
class VwapFigures:
    """A window's exact sums, trade count and VWAP (None when the window has no trades)."""

    notional: Decimal
    volume: Decimal
    count: int
    vwap: Decimal | None


def expected_vwap(notional: Decimal, volume: Decimal) -> Decimal | None:
    """notional / volume rounded half-even to :data:`VWAP_DIGITS` digits; None for no volume."""
    return None if volume == 0 else _VWAP_CONTEXT.divide(notional, volume)


def vwap_exact(
    answer: VwapFigures, truth_notional: Decimal, truth_volume: Decimal, count: int
) -> bool:
    """Whether the service's answer equals the truth's exact sums and their rounded quotient."""
    return answer == VwapFigures(
        truth_notional, truth_volume, count, expected_vwap(truth_notional, truth_volume)
    )


def percentile(values: Sequence[int], q: float) -> int | None:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class SymbolAccuracy:
    """The comparison of one symbol over its verified range [start_ms, end_ms)."""

    symbol: str
    start_ms: int
    end_ms: int
    trades: TradeDiff
    vwap_points: int
    vwap_exact: int
    #: A few VWAP points that differed, for the investigation.
    vwap_examples: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AccuracyReport:
    """The outcome of one accuracy run."""

    profile: str
    duration_s: float
    #: Whether reconciliation covered the run before the timeout.
    reconciled: bool
    symbols: tuple[SymbolAccuracy, ...]
    frames_quarantined: int
    #: Trade time to the verification of its window, in milliseconds.
    verified_latency_p50_ms: int | None
    verified_latency_p99_ms: int | None
    rest_requests: int
    rest_requests_per_100_trades: float

    def total(self, field: str) -> int:
        """Sum of a :class:`TradeDiff` field over the symbols."""
        return sum(int(getattr(s.trades, field)) for s in self.symbols)

    @property
    def vwap_points(self) -> int:
        """VWAP points compared."""
        return sum(s.vwap_points for s in self.symbols)

    @property
    def vwap_points_exact(self) -> int:
        """VWAP points that matched exactly."""
        return sum(s.vwap_exact for s in self.symbols)

    @property
    def exact(self) -> bool:
        """Reconciled, every true trade stored as is, nothing extra, every VWAP point exact."""
        return (
            self.reconciled
            and self.total("true_trades") > 0
            and self.total("missing") == self.total("extra") == self.total("differing") == 0
            and self.vwap_points > 0
            and self.vwap_points_exact == self.vwap_points
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form, with the totals and the verdict."""
        totals = {name: self.total(name) for name in ("true_trades", "stored", "missing", "extra")}
        totals["differing"] = self.total("differing")
        return {
            **asdict(self),
            "totals": {
                **totals,
                "vwap_points": self.vwap_points,
                "vwap_points_exact": self.vwap_points_exact,
            },
            "exact": self.exact,
        }


def render_report(report: AccuracyReport) -> str:
    """The report as a plain-text table."""
    header = f"{'symbol':<8}{'true':>8}{'stored':>8}{'missing':>9}{'extra':>7}{'differ':>8}"
    header += f"{'vwap pts':>10}{'exact':>7}"
    lines = [
        f"accuracy: profile={report.profile} duration={report.duration_s:g}s "
        f"reconciled={'yes' if report.reconciled else 'NO'}",
        header,
    ]
    for s in report.symbols:
        t = s.trades
        lines.append(
            f"{s.symbol:<8}{t.true_trades:>8}{t.stored:>8}{t.missing:>9}{t.extra:>7}"
            f"{t.differing:>8}{s.vwap_points:>10}{s.vwap_exact:>7}"
        )
    lines.append(
        f"{'total':<8}{report.total('true_trades'):>8}{report.total('stored'):>8}"
        f"{report.total('missing'):>9}{report.total('extra'):>7}{report.total('differing'):>8}"
        f"{report.vwap_points:>10}{report.vwap_points_exact:>7}"
    )
    lines += [
        f"frames quarantined          {report.frames_quarantined}",
        f"trade -> verified p50 / p99 {report.verified_latency_p50_ms} ms / "
        f"{report.verified_latency_p99_ms} ms",
        f"REST requests               {report.rest_requests} "
        f"({report.rest_requests_per_100_trades:.1f} per 100 trades)",
        f"verdict                     {'EXACT' if report.exact else 'NOT EXACT'}",
    ]
    for s in report.symbols:
        lines += [f"  {s.symbol}: {example}" for example in (*s.trades.examples, *s.vwap_examples)]
    return "\n".join(lines)
