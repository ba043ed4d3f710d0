"""Errors of the VWAP service; the servicer maps each to a gRPC status.

VwapError
├── InvalidRequest   → INVALID_ARGUMENT (the message says what to change)
├── UnknownSymbol    → NOT_FOUND
├── DeadlinePassed   → DEADLINE_EXCEEDED
└── LiveStateUnavailable → UNAVAILABLE
    └── LiveCapacityExhausted → RESOURCE_EXHAUSTED
"""

from __future__ import annotations


class VwapError(Exception):
    """Base of the VWAP service's errors."""


class InvalidRequest(VwapError):
    """A request the service cannot answer as asked; the message says what to change."""


class UnknownSymbol(VwapError):
    """A symbol with no trades and no entry in the symbols table."""


class DeadlinePassed(VwapError):
    """The request's deadline passed before (or while) it could be answered."""


class LiveStateUnavailable(VwapError):
    """The live state of a symbol could not be loaded from the store."""


class LiveCapacityExhausted(LiveStateUnavailable):
    """A new live state would take the trades held in memory past ``VWAP_LIVE_MAX_TRADES``."""
