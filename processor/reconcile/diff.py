"""Stored trades of a window against REST's trades (pure): the corrections that make them equal.

Trades are matched by ``(symbol, trade_id)``; values are compared numerically, so ``1.50`` and
``1.5`` are the same price. A trade id stored more than once (a copy with a wrong time) keeps
the copy closest to REST (equal values, else equal time, else the earliest) and the other copies
are deleted. Corrections come in trade-id order, then time order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from processor.events import Correction, CorrectionKind
from tradekit.domain import Trade


def _keep_first(copies: list[Trade], target: Trade | None) -> list[Trade]:
    """``copies`` in time order, with the copy to match against ``target`` moved first."""
    ordered = sorted(copies, key=lambda t: t.sort_key)
    if target is None:
        return ordered
    if not ordered:
        return ordered
    first = min(
        range(len(ordered)),
        key=lambda i: (not ordered[i].same_values(target), ordered[i].ts_ms != target.ts_ms, i),
    )
    return [ordered[first], *ordered[:first], *ordered[first + 1 :]]


def diff_window(stored: Sequence[Trade], rest: Sequence[Trade]) -> list[Correction]:
    """Corrections turning ``stored`` into ``rest`` (REST has each trade id at most once)."""
    by_id: dict[tuple[str, int], list[Trade]] = defaultdict(list)
    for trade in stored:
        by_id[(trade.symbol, trade.trade_id)].append(trade)
    truth: dict[tuple[str, int], Trade] = {}
    for trade in rest:
        key = (trade.symbol, trade.trade_id)
        if key in truth:
            raise ValueError(f"REST lists trade {trade.symbol}/{trade.trade_id} twice")
        truth[key] = trade
    corrections: list[Correction] = []
    for key in sorted(by_id.keys() | truth.keys(), key=lambda k: (k[1], k[0])):
        new = truth.get(key)
        copies = _keep_first(by_id.get(key, []), new)
        symbol, trade_id = key
        if new is not None:
            if not copies:
                corrections.append(Correction(CorrectionKind.INSERTED, symbol, trade_id, None, new))
            elif not copies[0].same_values(new):
                corrections.append(
                    Correction(CorrectionKind.UPDATED, symbol, trade_id, copies[0], new)
                )
            extra = copies[1:]
        else:
            extra = copies
        corrections.extend(
            Correction(CorrectionKind.DELETED, symbol, trade_id, old, None) for old in extra
        )
    return corrections


def apply_corrections(stored: Iterable[Trade], corrections: Iterable[Correction]) -> list[Trade]:
    """``stored`` with ``corrections`` applied, in provider order (what the database does)."""
    rows = {(t.symbol, t.trade_id, t.ts_ms): t for t in stored}
    for c in corrections:
        if c.old is not None:
            del rows[(c.old.symbol, c.old.trade_id, c.old.ts_ms)]
        if c.new is not None:
            rows[(c.new.symbol, c.new.trade_id, c.new.ts_ms)] = c.new
    return sorted(rows.values(), key=lambda t: (t.symbol, t.sort_key))
