"""``python -m vwap``: serve the VWAP API until SIGTERM or SIGINT, then stop gracefully."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from tradekit.entry import run_service_main
from vwap.app import run_vwap
from vwap.config import SETTINGS, VwapConfig


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; 2 on bad settings, 1 when the port is taken."""
    return run_service_main(
        prog="python -m vwap",
        description=(
            "VWAP service: exact VWAP over any window, series, live streams with revisions."
        ),
        settings=SETTINGS,
        load_config=VwapConfig.from_env,
        run=run_vwap,
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
