"""``python -m devstack.compose_check [--root DIR]``: check docker-compose.yml and Dockerfile."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from devstack.compose_check import check_all

_DEFAULT_ROOT = Path(__file__).resolve().parents[2]


def main(argv: Sequence[str] | None = None) -> int:
    """Print every problem; 1 if there is one, else 0."""
    parser = argparse.ArgumentParser(prog="python -m devstack.compose_check", description=__doc__)
    parser.add_argument("--root", type=Path, default=_DEFAULT_ROOT, help="project root")
    args = parser.parse_args(argv)
    problems = check_all(args.root)
    for problem in problems:
        print(problem)
    print(f"event=compose_checked problems={len(problems)}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
