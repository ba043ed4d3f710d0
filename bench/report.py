"""Result records shared by the benchmarks: percentiles, the JSON file, the console line.

Every benchmark returns a dict with at least:

- ``benchmark``: its name (the JSON file is ``<name>.json``);
- ``headline``: one line for the summary table;
- ``target`` / ``target_met``: the goal in words and whether this run met it (a measurement,
  never a failure);
- ``checks``: correctness checks by name, each True or False (these must hold);
- ``config``: the parameters of the run.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path("bench-results")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (0 < q <= 100) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def rounded(value: float, digits: int = 1) -> float:
    """``value`` rounded for display in JSON."""
    return round(value, digits)


def write_result(result: dict[str, Any], out: Path) -> Path:
    """Write ``result`` as indented JSON to ``out`` (parents created)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    result.setdefault("recorded_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    return out


def print_result(result: dict[str, Any]) -> None:
    """The headline, the target verdict and the checks, on the console."""
    verdict = "MET" if result.get("target_met") else "NOT MET"
    print(f"[{result['benchmark']}] {result['headline']}")
    print(f"[{result['benchmark']}] target: {result['target']} -> {verdict}")
    for name, ok in result.get("checks", {}).items():
        print(f"[{result['benchmark']}] check {name}: {'ok' if ok else 'FAILED'}")


def bench_parser(name: str, doc: str | None) -> argparse.ArgumentParser:
    """A parser with ``--out`` and ``--quick`` (the tiny smoke-test configuration)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m bench.{name}", description=(doc or "").split("\n\n")[0]
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / f"{name}.json")
    parser.add_argument(
        "--quick", action="store_true", help="tiny configuration (smoke test; numbers meaningless)"
    )
    return parser


def finish(result: dict[str, Any], out: Path) -> int:
    """Print and write ``result``; exit status 1 only when a correctness check failed."""
    print_result(result)
    print(f"wrote {write_result(result, out)}")
    return 0 if all(result.get("checks", {}).values()) else 1


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``fn()`` took, and its result."""
    began = time.perf_counter()
    value = fn()
    return time.perf_counter() - began, value
