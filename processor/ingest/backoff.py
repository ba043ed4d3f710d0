"""Capped exponential reconnect delays with jitter (pure, given its random source)."""

from __future__ import annotations

import random


class Backoff:
    """Delays ``initial * 2**n`` capped at ``maximum``, each drawn uniformly in [d/2, d]."""

    __slots__ = ("_attempt", "_initial", "_maximum", "_rng")

    def __init__(self, *, initial_s: float, maximum_s: float, rng: random.Random) -> None:
        if not 0 < initial_s <= maximum_s:
            raise ValueError(f"need 0 < initial ({initial_s}) <= maximum ({maximum_s})")
        self._initial = initial_s
        self._maximum = maximum_s
        self._rng = rng
        self._attempt = 0

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt (grows until :meth:`reset`)."""
        ceiling = min(self._maximum, self._initial * 2 ** min(self._attempt, 60))
        self._attempt += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """The connection worked: start again from ``initial``."""
        self._attempt = 0
