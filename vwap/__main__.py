"""``python -m vwap``: serve the VWAP API until SIGTERM or SIGINT, then stop gracefully."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence

from tradekit.config import ConfigError, parse_command_line, settings_table
from tradekit.grpc_server import wait_for_shutdown_signal
from tradekit.logs import configure_logging
from vwap.app import run_vwap
from vwap.config import SETTINGS, VwapConfig


async def _serve(config: VwapConfig) -> None:
    async with asyncio.TaskGroup() as tasks:
        # Install the signal handlers before the server reports SERVING.
        shutdown = tasks.create_task(wait_for_shutdown_signal(), name="vwap-signals")
        await asyncio.sleep(0)
        async with run_vwap(config):
            await shutdown


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = parse_command_line(
        "python -m vwap",
        "VWAP service: exact VWAP over any window, series, live streams with revisions.",
        SETTINGS,
        argv,
    )
    if args.settings_table:
        print(settings_table(SETTINGS))
        return 0
    try:
        config = VwapConfig.from_env(os.environ)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level)
    asyncio.run(_serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
