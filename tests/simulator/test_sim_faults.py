"""Pure fault plans and frame shaping: rates, determinism, and what faulty frames look like."""

from __future__ import annotations

import itertools
import json
import math
import statistics
from collections import Counter
from decimal import Decimal

import pytest

from simulator.corrupt import malformed_frame
from simulator.faults import (
    Malformed,
    RestFaultPlan,
    RestFaultRates,
    RestOutcome,
    WsFault,
    WsFaultPlan,
    WsFaultRates,
)
from simulator.profiles import PROFILES, get_profile
from simulator.shaping import FrameShaper
from simulator.tape import TapeParams, generate

START = 1_700_000_000_000
RATES = WsFaultRates(
    duplicate=0.10,
    disconnect=0.01,
    malformed=0.05,
    out_of_order=0.04,
    drop=0.03,
    wrong_value=0.02,
    phantom=0.015,
)
SAMPLES = 200_000


def _within(count: int, n: int, p: float, sigmas: float = 6.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


def test_ws_fault_rates_observed() -> None:
    """Each WebSocket fault kind is decided at its configured rate."""
    plan = WsFaultPlan(RATES, seed=1, connection=0)
    counts = Counter(a.fault if a else None for a in (plan.next() for _ in range(SAMPLES)))
    for kind in WsFault:
        assert _within(counts[kind], SAMPLES, RATES.rate(kind)), (kind, counts[kind])
    assert _within(counts[None], SAMPLES, 1 - RATES.total)


def test_malformed_subkind_weights_observed() -> None:
    """Malformed sub-kinds follow their weights."""
    rates = WsFaultRates(
        malformed=1.0, malformed_kinds=((Malformed.NOT_JSON, 3.0), (Malformed.WRONG_TS_UNIT, 1.0))
    )
    plan = WsFaultPlan(rates, seed=2, connection=0)
    kinds = Counter(a.malformed for a in (plan.next() for _ in range(40_000)) if a)
    assert set(kinds) == {Malformed.NOT_JSON, Malformed.WRONG_TS_UNIT}
    assert _within(kinds[Malformed.NOT_JSON], 40_000, 0.75)


def test_ws_plan_same_seed_same_decisions() -> None:
    """Same (seed, connection) gives identical decisions; other seed or connection differs."""

    def decisions(seed: int, connection: int) -> list[object]:
        plan = WsFaultPlan(RATES, seed, connection)
        return [plan.next() for _ in range(5_000)]

    assert decisions(5, 0) == decisions(5, 0)
    assert decisions(5, 0) != decisions(6, 0)
    assert decisions(5, 0) != decisions(5, 1)


def test_rest_plan_rates_and_determinism() -> None:
    """REST outcomes occur at their rates and replay identically for a seed."""
    rates = RestFaultRates(timeout_rate=0.05, error_rate=0.1, throttle_rate=0.2, retry_after_s=3)
    plan = RestFaultPlan(rates, seed=4)
    decisions = [plan.next() for _ in range(50_000)]
    counts = Counter(d.outcome for d in decisions)
    assert _within(counts[RestOutcome.TIMEOUT], 50_000, 0.05)
    assert _within(counts[RestOutcome.ERROR], 50_000, 0.1)
    assert _within(counts[RestOutcome.THROTTLED], 50_000, 0.2)
    assert all(d.retry_after_s == 3 for d in decisions if d.outcome is RestOutcome.THROTTLED)
    assert {d.status for d in decisions if d.outcome is RestOutcome.ERROR} <= {500, 502, 503, 504}
    again = RestFaultPlan(rates, seed=4)
    assert [again.next() for _ in range(50_000)] == decisions
    other = RestFaultPlan(rates, seed=5)
    assert [other.next() for _ in range(1_000)] != decisions[:1_000]


def test_rest_latency_has_fast_body_and_slow_tail() -> None:
    """The tail profile: median near its setting, about 5% of requests very slow."""
    rates = get_profile("tail").rest
    plan = RestFaultPlan(rates, seed=1)
    latencies = [plan.next().delay_ms for _ in range(40_000)]
    slow = sum(1 for ms in latencies if ms >= rates.slow_ms)
    assert _within(slow, 40_000, rates.slow_rate)
    assert 15 < statistics.median(latencies) < 27
    assert max(latencies) <= 2 * rates.slow_ms


def test_fault_rate_validation() -> None:
    """Rates outside [0, 1] or summing above 1 are rejected."""
    with pytest.raises(ValueError, match="duplicate"):
        WsFaultRates(duplicate=1.5)
    with pytest.raises(ValueError, match="sum"):
        WsFaultRates(duplicate=0.6, drop=0.6)
    with pytest.raises(ValueError, match="must be <= 1"):
        RestFaultRates(error_rate=0.7, throttle_rate=0.7)


def test_profiles_ordered_by_hostility() -> None:
    """clean has no faults; hostile has higher rates than flaky for every fault."""
    assert PROFILES["clean"].ws.total == 0
    assert PROFILES["clean"].rest.error_rate == 0
    for kind in WsFault:
        assert PROFILES["hostile"].ws.rate(kind) > PROFILES["flaky"].ws.rate(kind) > 0
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("nope")


def _valid(frame: bytes) -> bool:
    """The consumer-side validity rules of the provider protocol."""
    try:
        obj = json.loads(frame, parse_float=Decimal)
    except ValueError:
        return False
    if not isinstance(obj, dict) or set(obj) != {"ticker", "ts", "quantity", "price", "tradeId"}:
        return False
    if not isinstance(obj["ticker"], str):
        return False
    for key in ("ts", "tradeId"):
        if isinstance(obj[key], bool) or not isinstance(obj[key], int):
            return False
    if not 10**12 <= obj["ts"] < 10**13:
        return False
    for key in ("price", "quantity"):
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
            return False
        try:
            number = Decimal(str(value))
        except ArithmeticError:
            return False
        if not number > 0:
            return False
    return True


@pytest.mark.parametrize("kind", list(Malformed))
def test_every_malformed_variant_is_invalid(kind: Malformed) -> None:
    """Every malformed frame variant violates the protocol."""
    trade = generate("BTC", TapeParams(rate=100.0), 1, START, 1_000)[0]
    assert _valid(trade.frame)
    for variant in range(60):
        assert not _valid(malformed_frame(trade, kind, variant)), (kind, variant)


def test_shaper_applies_faults() -> None:
    """Shaped frames show duplicates, invalid frames, wrong values, phantoms, and missing trades."""
    trades = generate("ETH", TapeParams(rate=1000.0), 3, START, 20_000)
    rates = WsFaultRates(
        duplicate=0.1, malformed=0.05, out_of_order=0.05, drop=0.05, wrong_value=0.02, phantom=0.02
    )
    shaper = FrameShaper(WsFaultPlan(rates, 9, 0))
    frames = shaper.feed(trades)
    truth = {t.trade_id: t for t in trades}
    valid = [json.loads(f, parse_float=Decimal) for f in frames if _valid(f)]
    invalid = len(frames) - len(valid)
    ids = Counter(obj["tradeId"] for obj in valid)
    phantoms = sum(count for i, count in ids.items() if i not in truth)
    wrong = [
        o
        for o in valid
        if o["tradeId"] in truth
        and (
            Decimal(str(o["price"])) != truth[o["tradeId"]].price
            or Decimal(str(o["quantity"])) != truth[o["tradeId"]].quantity
        )
    ]
    seen_ids = [o["tradeId"] for o in valid if o["tradeId"] in truth]
    out_of_order = sum(1 for a, b in itertools.pairwise(seen_ids) if b < a)
    n = len(trades)
    assert shaper.faults["malformed"] == invalid
    assert _within(invalid, n, 0.05)
    repeats = sum(count - 1 for i, count in ids.items() if i in truth and count > 1)
    assert _within(repeats, n, 0.1, sigmas=8)
    assert _within(phantoms, n, 0.02, sigmas=8)
    assert _within(len(wrong), n, 0.02, sigmas=8)
    assert out_of_order > 0.02 * n
    assert len(set(truth) - set(ids)) >= shaper.faults["drop"]


def test_shaper_stops_after_disconnect() -> None:
    """After a disconnect decision nothing more is sent on that connection."""
    trades = generate("BTC", TapeParams(rate=1000.0), 3, START, 5_000)
    shaper = FrameShaper(WsFaultPlan(WsFaultRates(disconnect=0.01), 1, 0))
    frames = shaper.feed(trades)
    assert shaper.disconnect is not None
    assert len(frames) == shaper.offered < len(trades)
    assert shaper.feed(trades) == []


def test_shaping_is_deterministic() -> None:
    """The same seed and connection give the same frames; another connection differs."""
    trades = generate("SOL", TapeParams(rate=1000.0), 3, START, 5_000)

    def shaped(connection: int) -> list[bytes]:
        return FrameShaper(WsFaultPlan(PROFILES["hostile"].ws, 2, connection)).feed(trades)

    assert shaped(0) == shaped(0)
    assert shaped(0) != shaped(1)
