"""Each benchmark runs in its tiny configuration against the session's servers and writes a
well-formed result whose correctness checks hold (timings are never asserted)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nats
import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {"benchmark": str, "headline": str, "target": str, "target_met": bool, "checks": dict}


async def _stream_names(nats_url: str) -> set[str]:
    nc = await nats.connect(nats_url)
    try:
        return {info.config.name for info in await nc.jetstream().streams_info() if info.config}
    finally:
        await nc.close()


async def _delete_streams(nats_url: str, names: set[str]) -> None:
    nc = await nats.connect(nats_url)
    try:
        for name in names:
            await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()


def run(args: list[str], database_url: str, nats_url: str) -> subprocess.CompletedProcess[str]:
    """Run ``python <args>`` from the project root against the session's servers. Streams the
    run created and left (a benchmark killed on the timeout cannot delete its own) are deleted:
    their ``trading.>`` subjects would make every later stream on the server fail to start."""
    env = {**os.environ, "DATABASE_URL": database_url, "NATS_URL": nats_url}
    before = asyncio.run(_stream_names(nats_url))
    try:
        return subprocess.run(
            [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
        )
    finally:
        left = asyncio.run(_stream_names(nats_url)) - before
        asyncio.run(_delete_streams(nats_url, left))


def well_formed(path: Path, name: str) -> dict[str, Any]:
    """The result at ``path``, after checking its common fields."""
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    for key, kind in REQUIRED.items():
        assert isinstance(result[key], kind), key
    assert result["benchmark"] == name
    assert result["checks"]
    return result


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "numbers"),
    [
        ("ingest", ("sustained_trades_per_s", "end_to_end_trades_per_s", "ratio_to_raw_copy")),
        ("queries", ("share_of_echo",)),
        ("range_vwap", ("speedup", "raw_scan_median_ms", "aggregates_median_ms")),
    ],
)
def test_benchmark_quick_run_is_well_formed_and_correct(
    name: str, numbers: tuple[str, ...], tmp_path: Path, postgres_server_url: str, nats_url: str
) -> None:
    """The quick run exits 0, its JSON has the common fields and numbers, every check holds."""
    out = tmp_path / f"{name}.json"
    done = run(["-m", f"bench.{name}", "--quick", "--out", str(out)], postgres_server_url, nats_url)
    assert done.returncode == 0, done.stdout + done.stderr
    result = well_formed(out, name)
    assert all(result["checks"].values()), result["checks"]
    for key in numbers:
        assert isinstance(result[key], float | int), key
        assert result[key] > 0, key


@pytest.mark.slow
def test_suite_writes_a_summary_row_per_benchmark(
    tmp_path: Path, postgres_server_url: str, nats_url: str
) -> None:
    """``python -m bench --quick`` runs the selected benchmarks (the hedging script included)
    and writes SUMMARY.md with one row each."""
    done = run(
        [
            "-m",
            "bench",
            "--quick",
            "--only",
            "range_vwap,proxy_hedging",
            "--out-dir",
            str(tmp_path),
        ],
        postgres_server_url,
        nats_url,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = (tmp_path / "SUMMARY.md").read_text(encoding="utf-8")
    assert "| range_vwap |" in summary
    assert "| proxy_hedging |" in summary
    assert "CHECK FAILED" not in summary
    hedging = json.loads((tmp_path / "proxy_hedging.json").read_text(encoding="utf-8"))
    assert [r["mode"] for r in hedging["runs"]] == ["hedging_off", "hedging_on"]
