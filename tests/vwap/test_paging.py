"""GetTrades page sizes and page tokens."""

from __future__ import annotations

import base64

import pytest

from vwap.errors import InvalidRequest
from vwap.paging import decode_token, encode_token, page_size


def test_token_round_trips_for_the_same_query() -> None:
    """A token decodes to the key it was made from."""
    token = encode_token("BTC", 0, 1000, (500, 42))
    assert decode_token(token, "BTC", 0, 1000) == (500, 42)
    assert decode_token("", "BTC", 0, 1000) is None


@pytest.mark.parametrize(
    ("symbol", "start", "end"), [("ETH", 0, 1000), ("BTC", 1, 1000), ("BTC", 0, 999)]
)
def test_token_of_another_query_is_rejected(symbol: str, start: int, end: int) -> None:
    """A token presented with a different symbol or range is INVALID_ARGUMENT."""
    token = encode_token("BTC", 0, 1000, (500, 42))
    with pytest.raises(InvalidRequest, match="page_token"):
        decode_token(token, symbol, start, end)


_DEEPLY_NESTED = base64.urlsafe_b64encode(b"[" * 100_000).decode()


@pytest.mark.parametrize("garbage", ["%%%", "bm90IGpzb24", "WzEsMl0", _DEEPLY_NESTED])
def test_malformed_token_is_rejected(garbage: str) -> None:
    """Garbage, non-JSON, wrongly shaped and too deeply nested tokens are INVALID_ARGUMENT
    (JSON nested past the parser's recursion limit was an UNKNOWN error)."""
    with pytest.raises(InvalidRequest):
        decode_token(garbage, "BTC", 0, 1000)


@pytest.mark.parametrize("last", [(10**18, 42), (1000, 42), (-1, 42), (500, -1), (500, 2**63)])
def test_token_with_a_key_this_query_cannot_return_is_rejected(last: tuple[int, int]) -> None:
    """A crafted token (the right digest, a key outside the query's range or the id range) is
    INVALID_ARGUMENT, not a key handed to the database (a huge time would overflow a date)."""
    token = encode_token("BTC", 0, 1000, last)
    with pytest.raises(InvalidRequest, match="page_token"):
        decode_token(token, "BTC", 0, 1000)
    assert decode_token(encode_token("BTC", 0, 1000, (999, 0)), "BTC", 0, 1000) == (999, 0)


def test_page_size_bounds() -> None:
    """0 means the default; 1..10000 are accepted; anything else is rejected."""
    assert page_size(0) == 1000
    assert page_size(10_000) == 10_000
    for bad in (-1, 10_001):
        with pytest.raises(InvalidRequest, match="page_size"):
            page_size(bad)
