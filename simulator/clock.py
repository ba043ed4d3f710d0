"""Wall-clock time in epoch milliseconds (injectable for tests)."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]


def wall_clock_ms() -> int:
    """Current epoch time in whole milliseconds."""
    return time.time_ns() // 1_000_000
