"""A short hostile accuracy run through the harness's own code path is exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devstack.accuracy import main, run_accuracy
from devstack.exactness import AccuracyReport


@pytest.fixture(scope="module")
def hostile_report() -> AccuracyReport:
    """Twenty seconds of hostile trading, reconciled and graded against the ground truth."""
    return run_accuracy(profile="hostile", duration_s=20, seed=3, timeout_s=90, progress=False)


def test_reconciliation_covers_the_run(hostile_report: AccuracyReport) -> None:
    """Every symbol is verified past the end of trading before the timeout."""
    assert hostile_report.reconciled
    assert {s.symbol for s in hostile_report.symbols} == {"BTC", "ETH", "SOL"}


def test_stored_trades_equal_the_truth(hostile_report: AccuracyReport) -> None:
    """No true trade missing, none extra, none with another time, price or quantity."""
    assert hostile_report.total("true_trades") > 100
    assert hostile_report.total("stored") == hostile_report.total("true_trades")
    assert hostile_report.total("missing") == 0
    assert hostile_report.total("extra") == 0
    assert hostile_report.total("differing") == 0


def test_every_vwap_point_is_exact(hostile_report: AccuracyReport) -> None:
    """Every compared GetVwap point equals the truth's sums and rounded quotient."""
    assert hostile_report.vwap_points >= 6
    assert hostile_report.vwap_points_exact == hostile_report.vwap_points
    assert hostile_report.exact


def test_hostile_frames_were_quarantined(hostile_report: AccuracyReport) -> None:
    """The hostile feed's malformed frames reach the quarantine, not the store."""
    assert hostile_report.frames_quarantined > 0


def test_latency_and_rest_cost_are_measured(hostile_report: AccuracyReport) -> None:
    """Trade-to-verified percentiles and REST requests per 100 trades are reported."""
    assert hostile_report.verified_latency_p50_ms is not None
    assert hostile_report.verified_latency_p99_ms is not None
    assert 0 < hostile_report.verified_latency_p50_ms <= hostile_report.verified_latency_p99_ms
    assert hostile_report.rest_requests > 0
    assert hostile_report.rest_requests_per_100_trades > 0


def test_report_json_round_trips(hostile_report: AccuracyReport) -> None:
    """The JSON form carries the totals and the verdict."""
    data = json.loads(json.dumps(hostile_report.to_json()))
    assert data["exact"] is True
    assert data["totals"]["missing"] == 0
    assert data["totals"]["vwap_points"] == hostile_report.vwap_points


def test_cli_writes_json_and_exits_0_on_an_exact_clean_run(tmp_path: Path) -> None:
    """``main`` prints the table, writes ``--out`` and exits 0 for an exact run."""
    out = tmp_path / "report.json"
    code = main(["--profile", "clean", "--duration", "8", "--timeout", "60", "--out", str(out)])
    report = json.loads(out.read_text())
    assert code == 0
    assert report["exact"] is True
    assert report["profile"] == "clean"
