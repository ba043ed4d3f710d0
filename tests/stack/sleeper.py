"""``python -m tests.stack.sleeper``: a stand-in service for the orphan tests. It marks that it
started (a ``started`` file next to ``$SLEEPER_MARKER``), sleeps, and on SIGTERM writes the
signal's name to ``$SLEEPER_MARKER`` and exits."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType


def main() -> None:
    """Sleep until SIGTERM."""
    marker = Path(os.environ["SLEEPER_MARKER"])

    def on_term(signum: int, frame: FrameType | None) -> None:
        marker.write_text(signal.Signals(signum).name)
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    (marker.parent / "started").touch()
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main()
