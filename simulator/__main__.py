"""`python -m simulator`: serve the simulator until SIGTERM / SIGINT (then exit 0)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence

from simulator.app import run_simulator
from simulator.config import SimConfig, build_parser, load_config
from simulator.logfmt import configure_logging, get_logger, kv

log = get_logger("main")


async def serve(config: SimConfig) -> int:
    """Run until a termination signal arrives."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with run_simulator(config) as sim:
            await stop.wait()
            log.info(kv("stopping", port=sim.port))
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    log.info(kv("stopped"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: read the config once from the environment and the CLI."""
    try:
        config = load_config(os.environ, argv)
    except ValueError as exc:
        build_parser().error(str(exc))
    configure_logging(config.log_level)
    return asyncio.run(serve(config))


if __name__ == "__main__":
    sys.exit(main())
