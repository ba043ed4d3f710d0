"""The pure comparisons behind the accuracy report."""

from __future__ import annotations

from decimal import Decimal

from devstack.exactness import (
    AccuracyReport,
    SymbolAccuracy,
    TradeDiff,
    TradeRow,
    VwapFigures,
    diff_trades,
    expected_vwap,
    percentile,
    render_report,
    vwap_exact,
)

A = TradeRow(1, 1000, Decimal("10.5"), Decimal("2"))
B = TradeRow(2, 1001, Decimal("11"), Decimal("0.1"))
C = TradeRow(3, 1002, Decimal("12"), Decimal("1"))


def test_identical_sets_have_no_difference() -> None:
    """Equal trade sets: nothing missing, extra or differing."""
    diff = diff_trades([A, B], [B, A])
    assert (diff.true_trades, diff.stored, diff.missing, diff.extra, diff.differing) == (
        2,
        2,
        0,
        0,
        0,
    )


def test_equal_decimal_values_with_another_scale_are_equal() -> None:
    """10.50 stored for a true 10.5 is the same value, not a difference."""
    stored = TradeRow(1, 1000, Decimal("10.50"), Decimal("2.0"))
    assert diff_trades([A], [stored]).differing == 0


def test_missing_extra_and_differing_are_counted_by_trade_id() -> None:
    """A lost trade, a phantom and a wrong price are each counted once."""
    wrong = TradeRow(2, 1001, Decimal("11.01"), Decimal("0.1"))
    diff = diff_trades([A, B], [wrong, C])
    assert (diff.missing, diff.extra, diff.differing) == (1, 1, 1)
    assert any(e.startswith("missing 1") for e in diff.examples)


def test_a_shifted_timestamp_is_a_difference() -> None:
    """Same id and values at another millisecond differ."""
    assert diff_trades([A], [TradeRow(1, 999, A.price, A.quantity)]).differing == 1


def test_expected_vwap_rounds_half_even_to_30_digits() -> None:
    """1/3 has 30 significant threes; an empty window has no vwap."""
    assert expected_vwap(Decimal(1), Decimal(3)) == Decimal("0." + "3" * 30)
    assert expected_vwap(Decimal(0), Decimal(0)) is None


def test_vwap_exact_needs_every_figure() -> None:
    """Sums, count and quotient must all match; one digit off in the vwap fails."""
    good = VwapFigures(Decimal(2), Decimal(3), 2, expected_vwap(Decimal(2), Decimal(3)))
    assert vwap_exact(good, Decimal(2), Decimal(3), 2)
    assert not vwap_exact(good, Decimal(2), Decimal(3), 3)
    off = VwapFigures(Decimal(2), Decimal(3), 2, Decimal("0.666666666666666666666666666666"))
    assert not vwap_exact(off, Decimal(2), Decimal(3), 2)


def test_percentile_is_nearest_rank() -> None:
    """p50 of 1..100 is 50, p99 is 99, and an empty sample has none."""
    values = list(range(100, 0, -1))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([], 50) is None


def _report(missing: int, vwap_exact_points: int, reconciled: bool = True) -> AccuracyReport:
    symbol = SymbolAccuracy(
        "BTC", 0, 10, TradeDiff(5, 5 - missing, missing, 0, 0), 2, vwap_exact_points
    )
    return AccuracyReport("hostile", 20, reconciled, (symbol,), 3, 100, 200, 10, 200.0)


def test_report_is_exact_only_when_everything_matches() -> None:
    """A missing trade, an inexact VWAP point or an unfinished reconciliation fail the run."""
    assert _report(0, 2).exact
    assert not _report(1, 2).exact
    assert not _report(0, 1).exact
    assert not _report(0, 2, reconciled=False).exact


def test_rendered_report_shows_totals_and_verdict() -> None:
    """The table has a total line and says EXACT or NOT EXACT."""
    assert "EXACT" in render_report(_report(0, 2))
    assert "NOT EXACT" in render_report(_report(1, 2))
    assert "total" in render_report(_report(0, 2))
