"""Pure tape generation: determinism, ordering, decimals, clusters, wire format."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from decimal import Decimal

import pytest

from simulator.tape import DEFAULT_SPECS, Tape, TapeParams, TickerTape, generate, spec_for
from simulator.trade import Trade, export_line, make_trade, parse_export_line

START = 1_700_000_000_000


def _key(trades: list[Trade]) -> list[tuple[str, int, int, Decimal, Decimal, bytes]]:
    return [(t.ticker, t.ts, t.trade_id, t.price, t.quantity, t.frame) for t in trades]


def test_same_seed_same_tape() -> None:
    """Two generators with the same seed produce byte-identical tapes."""
    params = TapeParams(rate=200.0)
    first = generate("BTC", params, 7, START, 10_000)
    second = generate("BTC", params, 7, START, 10_000)
    assert len(first) > 1000
    assert _key(first) == _key(second)


def test_different_seed_different_tape() -> None:
    """A different seed gives a different tape."""
    params = TapeParams(rate=200.0)
    assert _key(generate("BTC", params, 7, START, 5_000)) != _key(
        generate("BTC", params, 8, START, 5_000)
    )


def test_a_later_start_never_reuses_trade_ids() -> None:
    """The same seed started a millisecond after a full minute of trades: no id in common
    (ids start at start_ms * 1000, as a real exchange's keep increasing across restarts)."""
    params = TapeParams(rate=200.0)
    first = generate("BTC", params, 7, START, 60_000)
    later = generate("BTC", params, 7, START + 60_001, 10_000)
    assert len(first) > 10_000
    assert max(t.trade_id for t in first) < min(t.trade_id for t in later)


def test_tape_independent_of_release_schedule() -> None:
    """Releasing in many small steps yields the same trades as one big step."""
    params = TapeParams(rate=300.0)
    whole = TickerTape(spec_for("ETH"), params, 3, START).advance_to(START + 4_999)
    stepped_tape = TickerTape(spec_for("ETH"), params, 3, START)
    stepped = []
    for now in range(START, START + 5_000, 7):
        stepped.extend(stepped_tape.advance_to(now))
    stepped.extend(stepped_tape.advance_to(START + 4_999))
    assert _key(stepped) == _key(whole)


def test_tape_ordered_ids_increasing_and_holes_not_real() -> None:
    """Trades are sorted by (ts, tradeId), ids strictly increase, and holes are never real ids."""
    trades = generate("SOL", TapeParams(rate=500.0, cluster_rate=0.3), 11, START, 20_000)
    keys = [(t.ts, t.trade_id) for t in trades]
    assert keys == sorted(keys)
    ids = [t.trade_id for t in trades]
    assert all(b > a for a, b in itertools.pairwise(ids))
    assert any(b - a > 1 for a, b in itertools.pairwise(ids))
    real = set(ids)
    assert not {t.hole for t in trades} & real
    assert all(START <= t.ts < START + 20_000 for t in trades)


@pytest.mark.parametrize("ticker", ["BTC", "ETH", "SOL", "DOGE", "ZZZ"])
def test_prices_on_tick_and_quantities_on_step(ticker: str) -> None:
    """Every price is a positive multiple of the ticker's tick; quantities of its step."""
    spec = spec_for(ticker)
    trades = generate(ticker, TapeParams(rate=200.0), 5, START, 10_000)
    assert trades
    for trade in trades:
        assert trade.price > 0
        assert trade.quantity > 0
        assert trade.price % spec.price_tick == 0
        assert trade.quantity % spec.qty_step == 0


def test_btc_looks_realistic() -> None:
    """BTC trades near 27000 with 2-decimal prices and up to 8-decimal quantities."""
    trades = generate("BTC", TapeParams(rate=100.0), 2, START, 30_000)
    prices = [t.price for t in trades]
    assert Decimal(20000) < min(prices)
    assert max(prices) < Decimal(34000)
    assert all(p.as_tuple().exponent == -2 for p in prices)
    assert all(t.quantity == t.quantity.quantize(Decimal("1E-8")) for t in trades)
    assert len(set(prices)) > 20


def test_rate_close_to_configured() -> None:
    """The mean trade rate is close to `rate` when bursts are off."""
    params = TapeParams(rate=400.0, burst_rate=0.0)
    trades = generate("ETH", params, 9, START, 60_000)
    assert 0.9 * 400 * 60 < len(trades) < 1.1 * 400 * 60


def test_clusters_share_a_millisecond() -> None:
    """With clusters on, many trades share their millisecond with others."""
    trades = generate("BTC", TapeParams(rate=200.0, cluster_rate=0.5), 4, START, 10_000)
    per_ms = Counter(t.ts for t in trades)
    assert max(per_ms.values()) >= 3
    assert sum(1 for n in per_ms.values() if n > 1) > 50


def test_burst_config_puts_more_than_100_trades_in_one_ms() -> None:
    """A burst config produces milliseconds with more than 100 trades."""
    params = TapeParams(rate=2000.0, cluster_rate=1.0, cluster_max=300)
    trades = generate("BTC", params, 1, START, 2_000)
    assert max(Counter(t.ts for t in trades).values()) > 100


def test_frames_are_exact_json_of_the_trade() -> None:
    """Each frame parses (as Decimal) back to exactly the trade's values, sometimes as strings."""
    trades = generate("BTC", TapeParams(rate=500.0, string_number_rate=0.2), 6, START, 5_000)
    strings = 0
    for trade in trades:
        obj = json.loads(trade.frame, parse_float=Decimal)
        assert list(obj) == ["ticker", "ts", "quantity", "price", "tradeId"]
        assert obj["ticker"] == trade.ticker
        assert obj["ts"] == trade.ts
        assert obj["tradeId"] == trade.trade_id
        assert Decimal(str(obj["price"])) == trade.price
        assert Decimal(str(obj["quantity"])) == trade.quantity
        strings += isinstance(obj["price"], str) + isinstance(obj["quantity"], str)
        assert not re.search(rb"\d[eE][+-]?\d", trade.frame)
    assert strings > 0


def test_multi_ticker_tape_merges_by_ts() -> None:
    """The multi-ticker tape is sorted by ts and covers every ticker."""
    tape = Tape(("BTC", "ETH", "SOL"), TapeParams(rate=100.0), 1, START)
    trades = tape.advance_to(START + 5_000)
    assert [t.ts for t in trades] == sorted(t.ts for t in trades)
    assert {t.ticker for t in trades} == {"BTC", "ETH", "SOL"}
    assert tape.advance_to(START + 5_000) == []


def test_export_line_round_trip() -> None:
    """An export line parses back to the same decimals (strings, exact)."""
    trade = make_trade("BTC", START, 42, Decimal("27123.45"), Decimal("0.00000001"), 41)
    line = export_line(trade)
    assert '"price": "27123.45"' in line
    assert '"quantity": "0.00000001"' in line
    parsed = parse_export_line(line)
    assert (parsed.ticker, parsed.ts, parsed.trade_id) == ("BTC", START, 42)
    assert (parsed.price, parsed.quantity) == (trade.price, trade.quantity)


def test_default_specs_are_distinct() -> None:
    """Known tickers have different tick sizes (not all the same market)."""
    assert len({spec.price_tick for spec in DEFAULT_SPECS.values()}) >= 3
