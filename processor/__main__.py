"""python -m processor: run the Data Processor until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import os
import sys

from processor.app import run_processor
from processor.config import SETTINGS, ProcessorConfig
from tradekit.config import ConfigError, Env, parse_command_line, settings_table
from tradekit.grpc_server import PortInUseError, wait_for_shutdown_signal
from tradekit.logs import configure_logging, event_logger

log = event_logger("processor.main")


async def serve(config: ProcessorConfig) -> None:
    """Run until a shutdown signal, then stop gracefully."""
    async with run_processor(config):
        await wait_for_shutdown_signal()


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_command_line(
        "python -m processor",
        "Data Processor: ingest the WebSocket feed, reconcile with REST, announce every event.",
        SETTINGS,
        argv,
    )
    if args.settings_table:
        print(settings_table(SETTINGS))
        return 0
    try:
        config = ProcessorConfig.from_env(Env(SETTINGS, os.environ))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level)
    try:
        asyncio.run(serve(config))
    except PortInUseError as exc:
        log.error("cannot_listen", error=str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
