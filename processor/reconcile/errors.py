"""What can go wrong in reconciliation, as a small tree.

ReconcileError                 base of every error raised on purpose here
├── RangeNotSettled            a requested range ends after now - settle (INVALID_ARGUMENT)
├── RangeTooLarge              a backfill covers more windows than allowed (INVALID_ARGUMENT)
├── UnknownSymbolRow           the symbol has no reconciliation row yet (FAILED_PRECONDITION)
├── WindowFetchFailed          fetching a window failed transiently; the window stays
│   │                          unverified and is fetched again later (UNAVAILABLE)
│   └── IncompleteWindow       the stream ended early or its count disagrees with the pages
└── WindowRejected             the proxy refused the window; retrying the same request
    │                          cannot help
    ├── ProviderUnknownSymbol  NOT_FOUND: the provider does not know the symbol
    └── InvalidWindow          INVALID_ARGUMENT / OUT_OF_RANGE from the proxy (INVALID_ARGUMENT)
        ├── UnlistableWindow   FAILED_PRECONDITION from the proxy: REST cannot list the window
        │                      completely (more trades in one millisecond than one page holds)
        └── ProxyContractBroken an answer that breaks the contract, e.g. a trade outside the
                               window (INTERNAL)
"""

from __future__ import annotations

from tradekit.timetext import iso_ms


class ReconcileError(Exception):
    """Base of every reconciliation error."""


class RangeNotSettled(ReconcileError):
    """The range ends later than now minus the settle delay: REST may still be incomplete."""

    def __init__(self, end_ms: int, settled_until_ms: int) -> None:
        super().__init__(
            f"end_time, widened to a whole reconciliation window ({iso_ms(end_ms)}), must be"
            f" at most now minus the settle delay ({iso_ms(settled_until_ms)}): REST may not"
            " have every trade yet; retry later or end earlier"
        )
        self.end_ms = end_ms
        self.settled_until_ms = settled_until_ms


class RangeTooLarge(ReconcileError):
    """A backfill or coverage request covers more windows than the configured maximum."""


class RangeBeforeEpoch(ReconcileError):
    """A backfill starts before 1970: the provider's REST API lists no trades before it."""

    def __init__(self) -> None:
        super().__init__(
            "start_time must not be before 1970-01-01T00:00:00Z: the provider's REST API lists"
            " trades from then on"
        )


class UnknownSymbolRow(ReconcileError):
    """No ``symbols`` row exists for the symbol (the reconciler has not started it yet)."""


class WindowFetchFailed(ReconcileError):
    """A transient failure (UNAVAILABLE, DEADLINE_EXCEEDED, ...): try the window again later."""


class IncompleteWindow(WindowFetchFailed):
    """The FetchTrades stream ended without completion, or its total disagrees with the pages."""


class WindowRejected(ReconcileError):
    """The proxy refused the window or answered against its contract: do not retry as is."""


class ProviderUnknownSymbol(WindowRejected):
    """The provider does not know the symbol (NOT_FOUND)."""


class InvalidWindow(WindowRejected):
    """INVALID_ARGUMENT / FAILED_PRECONDITION, or trades that do not belong to the window."""


class UnlistableWindow(InvalidWindow):
    """REST cannot list the window completely (the proxy's FAILED_PRECONDITION)."""


class ProxyContractBroken(InvalidWindow):
    """The proxy's answer breaks its contract: a trade outside the window or sent twice, a
    count that is not the trades', a malformed trade."""
