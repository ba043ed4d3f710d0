"""The closed-window cache: exact invalidation, no stale puts, bounded size."""

from __future__ import annotations

import gc
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from vwap.cache import RACE_MEMORY, VwapCache
from vwap.points import Sums, VwapPoint


def _point(end: int, window: int, *, symbol: str = "BTC", verified: bool = False) -> VwapPoint:
    return VwapPoint(symbol, end, window, Sums(Decimal(1), Decimal(1), 1), verified)


def test_invalidation_drops_exactly_the_windows_containing_the_time() -> None:
    """A time t drops windows with start <= t < end, of that symbol only."""
    cache = VwapCache(max_entries=100)
    for end, window in [(100, 50), (150, 100), (60, 10), (200, 50), (101, 1)]:
        cache.put(_point(end, window), cache.token("BTC"))
    cache.put(_point(100, 50, symbol="ETH"), cache.token("ETH"))
    cache.invalidate_time("BTC", 99)
    remaining = {
        k
        for k in [
            ("BTC", 100, 50),
            ("BTC", 150, 100),
            ("BTC", 60, 10),
            ("BTC", 200, 50),
            ("BTC", 101, 1),
            ("ETH", 100, 50),
        ]
        if cache.get(k) is not None
    }
    assert remaining == {("BTC", 60, 10), ("BTC", 200, 50), ("BTC", 101, 1), ("ETH", 100, 50)}
    cache.invalidate_time("BTC", 100)
    assert cache.get(("BTC", 101, 1)) is None
    assert cache.get(("BTC", 60, 10)) is not None


def test_put_after_an_invalidation_is_refused() -> None:
    """A value read before an invalidation of its symbol is never stored."""
    cache = VwapCache(max_entries=10)
    token = cache.token("BTC")
    cache.invalidate_time("BTC", 5)
    assert not cache.put(_point(10, 10), token)
    assert cache.get(("BTC", 10, 10)) is None


def test_verified_window_drops_unverified_entries_up_to_its_end() -> None:
    """A verified window drops unverified entries ending at or before its end."""
    cache = VwapCache(max_entries=10)
    cache.put(_point(10, 5), 0)
    cache.put(_point(30, 5), 0)
    cache.put(_point(8, 5, verified=True), 0)
    cache.put(_point(12, 5), 0)
    cache.put(_point(12, 5, verified=True), 0)  # read again once verified
    cache.invalidate_verified("BTC", 20)
    assert cache.get(("BTC", 10, 5)) is None
    assert cache.get(("BTC", 30, 5)) is not None
    assert cache.get(("BTC", 8, 5)) is not None
    assert cache.get(("BTC", 12, 5)) is not None


def test_cache_is_bounded_least_recently_used_first() -> None:
    """Beyond max_entries the least recently used entry goes, and invalidation still works."""
    cache = VwapCache(max_entries=2)
    cache.put(_point(10, 5), 0)
    cache.put(_point(20, 5), 0)
    assert cache.get(("BTC", 10, 5)) is not None
    cache.put(_point(30, 5), 0)
    assert len(cache) == 2
    assert cache.get(("BTC", 20, 5)) is None
    cache.invalidate_time("BTC", 27)
    assert cache.get(("BTC", 30, 5)) is None
    assert cache.get(("BTC", 10, 5)) is not None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["put", "put", "put", "time", "get", "verified"]),
            st.sampled_from(["BTC", "ETH"]),
            # wide, to spread over the index's classes; a few values, to hit the same keys
            st.one_of(st.integers(-(2**20), 2**20), st.sampled_from([-3, 5, 9])),
            st.one_of(st.integers(1, 2**18), st.sampled_from([1, 4, 12])),
            st.booleans(),
        ),
        max_size=120,
    ),
    st.integers(1, 40),
)
def test_the_index_matches_a_brute_force_model(
    steps: list[tuple[str, str, int, int, bool]], capacity: int
) -> None:
    """Any sequence of puts (verified or not, a key put again may flip), gets, time and
    verified-window invalidations leaves exactly the model's entries."""
    cache = VwapCache(max_entries=capacity)
    model: dict[tuple[str, int, int], bool] = {}  # insertion-ordered LRU: key -> verified
    for action, symbol, at, window, verified in steps:
        key = (symbol, at, window)
        if action == "put":
            point = _point(at, window, symbol=symbol, verified=verified)
            assert cache.put(point, cache.token(symbol))
            model.pop(key, None)
            model[key] = verified
            while len(model) > capacity:
                del model[next(iter(model))]
        elif action == "get":
            assert (cache.get(key) is not None) == (key in model)
            if key in model:
                model[key] = model.pop(key)
        elif action == "time":
            cache.invalidate_time(symbol, at)
            model = {
                k: v for k, v in model.items() if not (k[0] == symbol and k[1] - k[2] <= at < k[1])
            }
        else:
            cache.invalidate_verified(symbol, at)
            model = {
                k: v for k, v in model.items() if not (k[0] == symbol and not v and k[1] <= at)
            }
    assert len(cache) == len(model)
    for k, v in list(model.items()):
        got = cache.get(k)
        assert got is not None
        assert got.verified == v


def test_a_cached_point_comes_back_equal() -> None:
    """get returns a point equal to the one put: symbol, window, exact sums, verified flag."""
    cache = VwapCache(max_entries=10)
    point = VwapPoint("ETH", 5_000, 3_000, Sums(Decimal("12.3400"), Decimal("0.50"), 7), True)
    assert cache.put(point, cache.token("ETH"))
    got = cache.get(("ETH", 5_000, 3_000))
    assert got == point
    assert got is not None
    assert str(got.sums.notional) == "12.3400"  # the scale too


def test_cached_points_are_not_tracked_by_the_garbage_collector() -> None:
    """Ten thousand entries add almost no objects the cyclic collector walks (a full
    collection over a large cache would pause the service)."""
    cache = VwapCache(max_entries=20_000)
    token = cache.token("BTC")
    points = [
        VwapPoint("BTC", 60_000 * n + 17, 60_000 + n % 7, Sums(Decimal(n), Decimal(1), 1), False)
        for n in range(10_000)
    ]
    gc.collect()
    before = len(gc.get_objects())
    for point in points:
        cache.put(point, token)
    del points
    gc.collect()
    assert len(cache) == 10_000
    assert len(gc.get_objects()) - before < 1_000


def test_a_put_racing_only_with_other_windows_invalidations_is_stored() -> None:
    """Invalidations since the token that touch other windows (a busy symbol's live trades)
    do not refuse the value; one inside the window, or a verified window reaching its end,
    does; a read older than the remembered invalidations is refused."""
    cache = VwapCache(max_entries=10)
    token = cache.token("BTC")
    cache.invalidate_time("BTC", 10)  # the window's end is exclusive
    cache.invalidate_time("BTC", -1)
    cache.invalidate_verified("BTC", 9)
    cache.invalidate_time("ETH", 5)
    assert cache.put(_point(10, 10), token)
    assert cache.get(("BTC", 10, 10)) is not None
    for touching in (
        lambda: cache.invalidate_time("BTC", 0),
        lambda: cache.invalidate_verified("BTC", 20),
    ):
        token = cache.token("BTC")
        touching()
        cache.invalidate_time("BTC", 50)
        assert not cache.put(_point(20, 20), token)
    token = cache.token("BTC")
    for ts in range(100, 100 + RACE_MEMORY + 1):
        cache.invalidate_time("BTC", ts)
    assert not cache.put(_point(20, 20), token)
    assert cache.put(_point(20, 20), cache.token("BTC"))


def test_forgetting_drops_entries_and_refuses_reads_begun_before() -> None:
    """forget(symbol) drops that symbol's entries and refuses its racing reads; forget(None)
    does so for every symbol, including one that had no entry or invalidation yet."""
    cache = VwapCache(max_entries=10)
    for symbol in ("BTC", "ETH"):
        assert cache.put(_point(10, 5, symbol=symbol), cache.token(symbol))
    btc, sol = cache.token("BTC"), cache.token("SOL")
    cache.forget("BTC")
    assert cache.get(("BTC", 10, 5)) is None
    assert cache.get(("ETH", 10, 5)) is not None
    assert not cache.put(_point(30, 5), btc)
    assert cache.put(_point(30, 5), cache.token("BTC"))
    cache.forget(None)
    assert len(cache) == 0
    assert not cache.put(_point(30, 5, symbol="SOL"), sol)
    assert cache.put(_point(30, 5, symbol="SOL"), cache.token("SOL"))
