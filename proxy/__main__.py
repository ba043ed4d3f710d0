"""``python -m proxy``: serve ProxyService until SIGTERM or SIGINT (then exit 0)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import stamina

from proxy.app import run_proxy
from proxy.config import SETTINGS, load_config
from tradekit.entry import run_service_main

DESCRIPTION = (
    "ProxyService: fetches whole time windows from the provider's slow, faulty REST API, "
    "retrying and hedging each request, and streams the pages over gRPC."
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; 2 on bad settings, 1 when the port is taken."""
    # Every failed attempt is logged as attempt_failed; stamina's own retry log would repeat it.
    stamina.instrumentation.set_on_retry_hooks([])
    return run_service_main(
        prog="python -m proxy",
        description=DESCRIPTION,
        settings=SETTINGS,
        load_config=load_config,
        run=run_proxy,
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
