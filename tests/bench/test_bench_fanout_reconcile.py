"""The fan-out and reconciliation-cost benchmarks in their tiny configurations (50 subscribers,
a 5 s outage) write well-formed results whose correctness checks hold (timings never
asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {"benchmark": str, "headline": str, "target": str, "target_met": bool, "checks": dict}


def run_quick(name: str, out: Path, database_url: str, nats_url: str) -> dict[str, Any]:
    """Run ``python -m bench.<name> --quick`` against the session's servers; its result."""
    env = {**os.environ, "DATABASE_URL": database_url, "NATS_URL": nats_url}
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    for key, kind in REQUIRED.items():
        assert isinstance(result[key], kind), key
    assert result["benchmark"] == name
    return result


@pytest.mark.slow
def test_fanout_quick_run_delivers_every_update_exactly(
    tmp_path: Path, postgres_server_url: str, nats_url: str
) -> None:
    """Every trade reached every subscriber of its symbol (conflated or not), in order, and
    every subscriber ends on the brute-force VWAP, in both the baseline and the fan-out run;
    latencies of every trade and the conflation ratio are reported."""
    result = run_quick("fanout", tmp_path / "fanout.json", postgres_server_url, nats_url)
    assert set(result["checks"]) == {
        f"{run}_{check}"
        for run in ("baseline", "fanout")
        for check in (
            "all_subscribers_complete",
            "every_trade_delivered_to_every_subscriber",
            "live_updates_in_sequence_order",
            "at_most_one_live_update_per_trade",
            "same_closed_point_count_per_symbol",
            "last_live_vwap_equals_brute_force",
        )
    } | {"follower_saw_no_gap"}
    assert all(result["checks"].values()), result["checks"]
    assert result["config"]["subscribers"] == 50
    fanout = result["runs"]["fanout"]
    assert fanout["client"]["subscribers"] == 50
    assert fanout["client"]["latency_samples"] == 25 * sum(fanout["trades_sent"].values())
    assert fanout["client"]["undelivered_trades"] == 0
    due = fanout["client"]["live_updates_due"]
    assert due == 25 * sum(fanout["trades_sent"].values())
    delivered = fanout["client"]["live_updates_delivered"]
    assert 0 < delivered <= due
    assert result["conflation_ratio"] == round(1 - delivered / due, 4)
    for key in ("p50_ms", "p99_ms", "baseline_p50_ms", "baseline_p99_ms"):
        assert isinstance(result[key], float | int), key


@pytest.mark.slow
def test_reconcile_cost_quick_run_recovers_the_outage_exactly(
    tmp_path: Path, postgres_server_url: str, nats_url: str
) -> None:
    """After a 5 s cut of the feed the outage range is verified and equals the simulator's
    truth; the REST cost and both verify times are reported."""
    result = run_quick(
        "reconcile_cost", tmp_path / "reconcile_cost.json", postgres_server_url, nats_url
    )
    assert set(result["checks"]) == {
        "steady_range_equals_truth",
        "outage_range_equals_truth",
        "outage_range_covered",
        "feed_reconnected",
    }
    assert all(result["checks"].values()), result["checks"]
    assert result["config"]["outage_s"] == 5
    assert result["outage"]["connections_aborted"] >= 1
    assert result["steady_state_cost"]["true_trades"] > 0
    for key in ("requests_per_100_trades", "baseline_verify_s", "verify_after_outage_s"):
        assert isinstance(result[key], float | int), key
        assert result[key] > 0, key
