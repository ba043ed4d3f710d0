"""Ground truth store: exact VWAP, REST page selection, export and replay."""

from __future__ import annotations

from decimal import Decimal, localcontext
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.replay import ReplaySource, load_export
from simulator.tape import TapeParams, generate
from simulator.trade import Trade, make_trade
from simulator.truth import VWAP_CONTEXT, TruthStore

START = 1_700_000_000_000

prices = st.decimals(min_value=Decimal("0.00001"), max_value=Decimal("100000"), places=5)
quantities = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("1000"), places=8)
trade_rows = st.lists(
    st.tuples(st.integers(min_value=0, max_value=2_000), prices, quantities), max_size=60
)


def _trades(rows: list[tuple[int, Decimal, Decimal]]) -> list[Trade]:
    rows = sorted(rows, key=lambda row: row[0])
    return [
        make_trade("BTC", START + offset, 1000 + index, price, quantity, 999)
        for index, (offset, price, quantity) in enumerate(rows)
    ]


def _brute_force(trades: list[Trade], end: int, window: int) -> tuple[Decimal, Decimal, int]:
    selected = [t for t in trades if end - window <= t.ts < end]
    with localcontext() as ctx:
        ctx.prec = 1000
        notional = sum((t.price * t.quantity for t in selected), Decimal(0))
        volume = sum((t.quantity for t in selected), Decimal(0))
    return notional, volume, len(selected)


@settings(max_examples=200, deadline=None)
@given(
    rows=trade_rows,
    end_offset=st.integers(min_value=-100, max_value=2_200),
    window=st.integers(min_value=1, max_value=2_500),
)
def test_vwap_equals_brute_force(
    rows: list[tuple[int, Decimal, Decimal]], end_offset: int, window: int
) -> None:
    """The store's window VWAP equals a brute-force exact Decimal computation."""
    trades = _trades(rows)
    store = TruthStore(["BTC"])
    store.add(trades)
    end = START + end_offset
    result = store.vwap("BTC", end, window)
    notional, volume, count = _brute_force(trades, end, window)
    assert (result.notional, result.volume, result.count) == (notional, volume, count)
    if volume == 0:
        assert result.vwap is None
    else:
        assert result.vwap == VWAP_CONTEXT.divide(notional, volume)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=10**6),
    cut=st.integers(min_value=0, max_value=2_000),
    end_offset=st.integers(min_value=0, max_value=2_100),
    window=st.integers(min_value=1, max_value=2_500),
)
def test_vwap_exact_after_retention_trim(seed: int, cut: int, end_offset: int, window: int) -> None:
    """After trimming old trades, every window aggregates exactly the retained trades."""
    trades = generate("BTC", TapeParams(rate=2000.0), seed, START, 2_000)
    store = TruthStore(["BTC"])
    store.add(trades)
    dropped = store.trim_before(START + cut)
    retained = store.trades("BTC")
    assert retained == trades[dropped:]
    assert all(t in retained for t in trades if t.ts >= START + cut)
    result = store.vwap("BTC", START + end_offset, window)
    notional, volume, count = _brute_force(retained, START + end_offset, window)
    assert (result.notional, result.volume, result.count) == (notional, volume, count)


def test_vwap_window_bounds() -> None:
    """Window holds end - window <= ts < end: start inclusive, end exclusive."""
    store = TruthStore(["BTC"])
    store.add(
        [
            make_trade("BTC", START, 1, Decimal("10"), Decimal("1"), 0),
            make_trade("BTC", START + 100, 2, Decimal("20"), Decimal("3"), 0),
        ]
    )
    assert store.vwap("BTC", START + 100, 100).count == 1
    result = store.vwap("BTC", START + 101, 101)
    assert result.count == 2
    assert result.notional == Decimal("70")
    assert result.vwap == Decimal("17.5")
    assert result.to_json() == {"notional": "70", "volume": "4", "vwap": "17.5", "count": 2}
    assert store.vwap("BTC", START, 1).vwap is None


def test_page_limit_order_and_visibility() -> None:
    """Pages hold at most 100 trades, start inclusive, end exclusive, and only visible ones."""
    trades = generate("BTC", TapeParams(rate=500.0), 1, START, 3_000)
    store = TruthStore(["BTC"])
    store.add(trades)
    start = trades[10].ts
    page = store.page("BTC", start, None, START + 3_000)
    assert len(page) == 100
    assert page == [t for t in trades if t.ts >= start][:100]
    end = trades[40].ts
    assert store.page("BTC", start, end, START + 3_000) == [
        t for t in trades if start <= t.ts < end
    ]
    cutoff = trades[20].ts
    visible = store.page("BTC", start, None, cutoff)
    assert visible == [t for t in trades if start <= t.ts <= cutoff]


def test_truth_rejects_out_of_order_trades() -> None:
    """Appending a trade not after the last one fails loudly."""
    store = TruthStore(["BTC"])
    store.add([make_trade("BTC", START, 5, Decimal(1), Decimal(1), 0)])
    with pytest.raises(ValueError, match="not after"):
        store.add([make_trade("BTC", START, 5, Decimal(1), Decimal(1), 0)])


def test_export_then_replay_serves_same_trades(tmp_path: Path) -> None:
    """An export replays with the same ids and decimals, shifted to the new start."""
    trades = generate("ETH", TapeParams(rate=300.0), 1, START, 2_000)
    trades += generate("SOL", TapeParams(rate=300.0), 1, START + 5, 2_000)
    store = TruthStore(["ETH", "SOL"])
    store.add(trades)
    path = tmp_path / "truth.jsonl"
    assert store.export_jsonl(path) == len(trades)
    recorded = load_export(path)
    new_start = START + 1_000_000
    source = ReplaySource(recorded, new_start)
    assert set(source.tickers) == {"ETH", "SOL"}
    early = source.advance_to(new_start + 999)
    replayed = early + source.advance_to(new_start + 10_000)
    assert len(replayed) == len(trades)
    assert all(t.ts <= new_start + 999 for t in early)
    first_ts = min(t.ts for t in trades)
    original = {(t.ticker, t.trade_id): t for t in trades}
    for trade in replayed:
        source_trade = original[(trade.ticker, trade.trade_id)]
        assert trade.ts == source_trade.ts - first_ts + new_start
        assert (trade.price, trade.quantity) == (source_trade.price, source_trade.quantity)
        assert (trade.ticker, trade.hole) not in original


def test_load_export_reports_bad_line(tmp_path: Path) -> None:
    """A corrupt replay file names the offending line."""
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"ticker": "BTC", "ts": 1, "tradeId": 1, "price": "1", "quantity": "1"}\n'
        '{"ticker": "BTC", "ts": 2, "tradeId": 2, "price": "-1", "quantity": "1"}\n'
    )
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        load_export(path)
