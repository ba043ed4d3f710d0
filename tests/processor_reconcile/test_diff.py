"""Diffing a window's stored trades against REST (pure)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from processor.events import CorrectionKind
from processor.reconcile.diff import apply_corrections, diff_window
from tradekit.domain import Trade

prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100), places=2)


def trade(trade_id: int, ts: int, price: str, qty: str = "1") -> Trade:
    return Trade("BTC", trade_id, ts, Decimal(price), Decimal(qty))


@st.composite
def rest_and_stored(draw: st.DrawFn) -> tuple[list[Trade], list[Trade]]:
    ids = draw(st.lists(st.integers(1, 40), unique=True, max_size=15))
    rest = [Trade("BTC", i, draw(st.integers(0, 1000)), draw(prices), draw(prices)) for i in ids]
    stored: dict[tuple[int, int], Trade] = {}
    for t in rest:
        action = draw(st.sampled_from(["keep", "drop", "alter", "rescale", "move", "twice"]))
        if action == "drop":
            continue
        if action == "alter":
            t = Trade(t.symbol, t.trade_id, t.ts_ms, t.price + 1, t.quantity)
        elif action == "rescale":
            t = Trade(
                t.symbol, t.trade_id, t.ts_ms, t.price.quantize(Decimal("0.0001")), t.quantity
            )
        elif action == "move":
            t = Trade(t.symbol, t.trade_id, t.ts_ms + 1, t.price, t.quantity)
        elif action == "twice":
            copy = Trade(t.symbol, t.trade_id, t.ts_ms + 2000, t.price, t.quantity)
            stored[(copy.trade_id, copy.ts_ms)] = copy
        stored[(t.trade_id, t.ts_ms)] = t
    for i in draw(st.lists(st.integers(41, 60), unique=True, max_size=4)):
        stored[(i, 5)] = Trade("BTC", i, 5, draw(prices), draw(prices))
    return rest, list(stored.values())


@given(rest_and_stored())
def test_applying_the_corrections_gives_rest(case: tuple[list[Trade], list[Trade]]) -> None:
    """stored + diff(stored, rest) has exactly REST's trades and values."""
    rest, stored = case
    result = apply_corrections(stored, diff_window(stored, rest))
    expected = sorted(rest, key=lambda t: (t.symbol, t.sort_key))
    assert len(result) == len(expected)
    assert all(a.same_values(b) for a, b in zip(result, expected, strict=True))


@given(rest_and_stored())
def test_corrections_are_in_trade_id_order(case: tuple[list[Trade], list[Trade]]) -> None:
    """Corrections come sorted by trade id, so the event order is deterministic."""
    rest, stored = case
    ids = [c.trade_id for c in diff_window(stored, rest)]
    assert ids == sorted(ids)


@given(st.lists(st.integers(1, 1000), unique=True, max_size=10), prices)
def test_equal_sides_need_no_correction(ids: list[int], price: Decimal) -> None:
    """No correction when stored equals REST, even with a different decimal scale."""
    rest = [trade(i, i, str(price)) for i in ids]
    stored = [trade(i, i, str(price.quantize(Decimal("0.000001")))) for i in ids]
    assert diff_window(stored, rest) == []


def test_each_kind_carries_old_and_new_values() -> None:
    """Missing -> INSERTED, extra -> DELETED, wrong value -> UPDATED with old and new."""
    rest = [trade(1, 10, "1.5"), trade(2, 20, "2"), trade(4, 40, "4")]
    stored = [trade(1, 10, "1.50"), trade(2, 20, "2.5"), trade(3, 30, "3")]
    corrections = diff_window(stored, rest)
    assert [(c.kind, c.trade_id) for c in corrections] == [
        (CorrectionKind.UPDATED, 2),
        (CorrectionKind.DELETED, 3),
        (CorrectionKind.INSERTED, 4),
    ]
    assert corrections[0].old == stored[1]
    assert corrections[0].new == rest[1]
    assert corrections[1].new is None
    assert corrections[2].old is None
