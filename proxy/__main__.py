"""``python -m proxy``: serve ProxyService until SIGTERM or SIGINT (then exit 0)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence

import stamina

from proxy.app import serve
from proxy.config import SETTINGS, load_config
from tradekit.config import ConfigError, parse_command_line, settings_table
from tradekit.grpc_server import PortInUseError
from tradekit.logs import configure_logging, event_logger

DESCRIPTION = (
    "ProxyService: fetches whole time windows from the provider's slow, faulty REST API, "
    "retrying and hedging each request, and streams the pages over gRPC."
)

log = event_logger("proxy.main")


def main(argv: Sequence[str] | None = None) -> int:
    """Read the settings once, then serve; 2 on bad settings, 1 when the port is taken."""
    args = parse_command_line("python -m proxy", DESCRIPTION, SETTINGS, argv)
    if args.settings_table:
        print(settings_table(SETTINGS))
        return 0
    try:
        config = load_config(os.environ)
    except ConfigError as exc:
        print(f"python -m proxy: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level)
    # Every failed attempt is logged as attempt_failed; stamina's own retry log would repeat it.
    stamina.instrumentation.set_on_retry_hooks([])
    try:
        asyncio.run(serve(config))
    except PortInUseError as exc:
        log.error("cannot_listen", error=str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
