"""Run every benchmark sequentially (each in its own process: 2 cores, no interference) and
write ``bench-results/SUMMARY.md`` from their JSON results.

    python -m bench [--quick] [--only ingest,queries] [--out-dir bench-results]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: (name, module run with ``python -m``, extra flags for --quick)
BENCHMARKS: tuple[tuple[str, str], ...] = (
    ("ingest", "bench.ingest"),
    ("queries", "bench.queries"),
    ("range_vwap", "bench.range_vwap"),
    ("proxy_hedging", "bench.proxy_hedging"),
    ("fanout", "bench.fanout"),
    ("reconcile_cost", "bench.reconcile_cost"),
)
QUICK_HEDGING = ["--windows", "10", "--callers", "2"]


def command(name: str, module: str, out: Path, *, quick: bool) -> list[str]:
    """The command line of one benchmark."""
    if name == "proxy_hedging":  # a script of its own, with its own flags
        cmd = [sys.executable, str(Path(__file__).with_name("proxy_hedging.py")), "--out", str(out)]
        return cmd + (QUICK_HEDGING if quick else [])
    return [sys.executable, "-m", module, "--out", str(out)] + (["--quick"] if quick else [])


def summary_row(name: str, result: dict[str, Any] | None, seconds: float) -> str:
    """One Markdown table row."""
    if result is None:
        return f"| {name} | failed to run (see its output) | - | - | {seconds:.0f} s |"
    if name == "proxy_hedging":
        headline = (
            f"window fetch p99 {result['runs'][0]['p99_ms']} ms with hedging off vs "
            f"{result['runs'][1]['p99_ms']} ms on = {result['p99_ratio_off_over_on']}x"
        )
        met = "yes" if result["p99_ratio_off_over_on"] > 1 else "no"
        return f"| {name} | {headline} | lower p99 with hedging | {met} | {seconds:.0f} s |"
    checks = result.get("checks", {})
    failed = [k for k, ok in checks.items() if not ok]
    met = "yes" if result.get("target_met") else "no"
    if failed:
        met += f" (CHECK FAILED: {', '.join(failed)})"
    return f"| {name} | {result['headline']} | {result['target']} | {met} | {seconds:.0f} s |"


def write_summary(rows: Sequence[str], out_dir: Path, *, quick: bool) -> Path:
    """``SUMMARY.md``: the table, and how it was made."""
    lines = [
        "# Benchmark results",
        "",
        f"Recorded {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with `make bench`"
        + (" (quick smoke configuration: numbers are meaningless)" if quick else "")
        + "; each figure is measured against its baseline in the same run. Details in "
        "`bench-results/<name>.json`.",
        "",
        "| benchmark | result | target | met | took |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]
    path = out_dir / "SUMMARY.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected benchmarks; exit 1 when one failed to run or a correctness check failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=Path("bench-results"))
    parser.add_argument("--quick", action="store_true", help="tiny configurations (smoke test)")
    parser.add_argument("--only", default="", help="comma-separated names to run")
    args = parser.parse_args(argv)
    wanted = set(filter(None, args.only.split(",")))
    rows = []
    status = 0
    for name, module in BENCHMARKS:
        if wanted and name not in wanted:
            continue
        out = args.out_dir / f"{name}.json"
        out.unlink(missing_ok=True)
        print(f"== {name}", flush=True)
        began = time.monotonic()
        code = subprocess.run(command(name, module, out, quick=args.quick), check=False).returncode
        seconds = time.monotonic() - began
        result = json.loads(out.read_text(encoding="utf-8")) if out.exists() else None
        if code != 0 or result is None:
            status = 1
        rows.append(summary_row(name, result, seconds))
    path = write_summary(rows, args.out_dir, quick=args.quick)
    print(path.read_text(encoding="utf-8"))
    return status


if __name__ == "__main__":
    sys.exit(main())
