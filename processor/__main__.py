"""``python -m processor``: run the Data Processor until SIGTERM or SIGINT (then exit 0)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

from processor.app import GC_THRESHOLDS, run_processor
from processor.config import SETTINGS, ProcessorConfig
from tradekit.config import Env
from tradekit.entry import run_service_main


def load_config(environ: Mapping[str, str]) -> ProcessorConfig:
    """The processor's configuration from ``environ``."""
    return ProcessorConfig.from_env(Env(SETTINGS, environ))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; 2 on bad settings, 1 when the port is taken."""
    return run_service_main(
        prog="python -m processor",
        description=(
            "Data Processor: ingest the WebSocket feed, reconcile with REST, announce every event."
        ),
        settings=SETTINGS,
        load_config=load_config,
        run=run_processor,
        argv=argv,
        gc_thresholds=GC_THRESHOLDS,
    )


if __name__ == "__main__":
    sys.exit(main())
