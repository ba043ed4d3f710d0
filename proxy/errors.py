"""What can go wrong in the proxy, as a small tree.

    ProxyError
    ├── InvalidWindowRequest       the caller's request cannot be served as asked (INVALID_ARGUMENT)
    ├── ProviderRejected           the provider refused the request; retrying cannot help
    │   ├── UnknownSymbol          404: the provider does not know the ticker (NOT_FOUND)
    │   └── ProviderBadRequest     400: the provider rejected the parameters (INVALID_ARGUMENT)
    ├── PagingStuck                a full page inside one millisecond (FAILED_PRECONDITION)
    └── AttemptFailed              one HTTP request failed transiently; it is retried
        ├── AttemptTimedOut        no complete answer within the attempt timeout
        ├── ProviderServerError    5xx (or 408)
        ├── ProviderRateLimited    429, with the provider's Retry-After when given
        ├── ProviderConnectionError  connect failure, reset, truncated body, not HTTP
        └── MalformedResponse      200 whose body is not a valid page

Only :class:`AttemptFailed` is retried; it never reaches a caller, because a window is
retried until it succeeds or the caller goes away.
"""

from __future__ import annotations


class ProxyError(Exception):
    """Base of every error the proxy raises on purpose."""


class InvalidWindowRequest(ProxyError):
    """A request the proxy will not serve as asked; the message says what to change."""


class ProviderRejected(ProxyError):
    """The provider answered a 4xx other than 429 (and 408): not retried."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"provider answered HTTP {status}: {message}")
        self.status = status
        self.provider_message = message


class UnknownSymbol(ProviderRejected):
    """The provider answered 404: it does not know the ticker."""


class ProviderBadRequest(ProviderRejected):
    """The provider answered 400: it rejected the request's parameters."""


class PagingStuck(ProxyError):
    """A full page of trades all in one millisecond: the protocol cannot page past it."""

    def __init__(self, symbol: str, ms: int, page_size: int) -> None:
        super().__init__(
            f"cannot page past millisecond {ms} of {symbol}: a full page of {page_size} trades "
            f"all share it, so more than {page_size} trades may fall in that one millisecond, "
            f"and startTime (inclusive, the only paging parameter) cannot skip within a "
            f"millisecond; ask for a window that ends at or before {ms}, or starts after it"
        )
        self.symbol = symbol
        self.ms = ms


class AttemptFailed(ProxyError):
    """One HTTP request failed in a way a later attempt may not; ``reason`` names how."""

    reason = "failed"


class AttemptTimedOut(AttemptFailed):
    """No complete answer within the attempt timeout."""

    reason = "timeout"

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"no answer within {timeout_s:.3f} s")
        self.timeout_s = timeout_s


class ProviderServerError(AttemptFailed):
    """The provider answered 5xx (or 408 Request Timeout)."""

    reason = "5xx"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"provider answered HTTP {status}: {message}")
        self.status = status


class ProviderRateLimited(AttemptFailed):
    """The provider answered 429; ``retry_after_s`` is its Retry-After, when given."""

    reason = "429"

    def __init__(self, retry_after_s: float | None) -> None:
        super().__init__(f"provider answered 429, Retry-After {retry_after_s} s")
        self.retry_after_s = retry_after_s


class ProviderConnectionError(AttemptFailed):
    """The request could not connect, or the connection broke before the whole answer."""

    reason = "connection"


class MalformedResponse(AttemptFailed):
    """A 200 whose body is not a valid page (not JSON, wrong shape, out of range)."""

    reason = "malformed"
