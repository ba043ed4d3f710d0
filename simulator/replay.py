"""Replay of a recorded tape (truth export JSON lines) instead of a generated one.

Timestamps are shifted so that the first recorded trade happens at the simulator's start
time (`ts' = ts - first_ts + start_ms`); relative spacing, tradeIds, prices and quantities
are served exactly as recorded. Shifting to "now" keeps the REST lag meaningful. When the
recording is exhausted no more trades are released.
"""

from __future__ import annotations

from pathlib import Path

from simulator.trade import ExportedTrade, Trade, make_trade, parse_export_line


def load_export(path: Path) -> list[ExportedTrade]:
    """Read a truth export file (blank lines ignored); raises ValueError with the line number."""
    trades: list[ExportedTrade] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                trades.append(parse_export_line(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: {exc}") from exc
    return trades


def _holes(trades: list[ExportedTrade]) -> dict[tuple[str, int], int]:
    """For each (ticker, tradeId), a tradeId of that ticker that is not in the recording."""
    ids_by_ticker: dict[str, set[int]] = {}
    for trade in trades:
        ids_by_ticker.setdefault(trade.ticker, set()).add(trade.trade_id)
    holes: dict[tuple[str, int], int] = {}
    for ticker, ids in ids_by_ticker.items():
        fallback = max(ids) + 1
        hole = fallback
        for trade_id in sorted(ids):
            if trade_id - 1 >= 0 and trade_id - 1 not in ids:
                hole = trade_id - 1
            holes[(ticker, trade_id)] = hole
    return holes


class ReplaySource:
    """Releases recorded trades as wall-clock time passes."""

    def __init__(self, recorded: list[ExportedTrade], start_ms: int) -> None:
        if not recorded:
            raise ValueError("replay file holds no trades")
        seen: set[tuple[str, int]] = set()
        for trade in recorded:
            key = (trade.ticker, trade.trade_id)
            if key in seen:
                raise ValueError(f"duplicate tradeId {trade.trade_id} for {trade.ticker}")
            seen.add(key)
        ordered = sorted(recorded, key=lambda t: (t.ts, t.ticker, t.trade_id))
        shift = start_ms - ordered[0].ts
        holes = _holes(ordered)
        self._trades: list[Trade] = [
            make_trade(
                t.ticker,
                t.ts + shift,
                t.trade_id,
                t.price,
                t.quantity,
                holes[(t.ticker, t.trade_id)],
            )
            for t in ordered
        ]
        self._tickers = tuple(dict.fromkeys(t.ticker for t in ordered))
        self._next = 0

    @property
    def tickers(self) -> tuple[str, ...]:
        """Tickers present in the recording, in order of first appearance."""
        return self._tickers

    def advance_to(self, now_ms: int) -> list[Trade]:
        """Recorded trades not yet released with shifted ts <= now_ms."""
        start = self._next
        end = start
        trades = self._trades
        while end < len(trades) and trades[end].ts <= now_ms:
            end += 1
        self._next = end
        return trades[start:end]
