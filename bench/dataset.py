"""Synthetic trades for the query benchmarks, loaded with COPY as the processor stores them.

Prices are a seeded random walk in integer ticks (exact ``Decimal``), quantities integer
multiples of a step; timestamps spread evenly over the span with a little jitter, trade ids
increasing per symbol.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TICK = Decimal("0.01")
QTY_STEP = Decimal("0.0001")

COPY_SQL = "COPY trades (symbol, trade_id, ts, price, quantity, source, verified) FROM STDIN"

Row = tuple[str, int, datetime, Decimal, Decimal, str, bool]


def synthetic_rows(
    symbols: Sequence[str], *, start_ms: int, span_ms: int, per_symbol: int, seed: int
) -> Iterator[Row]:
    """``per_symbol`` trades of each symbol in ``[start_ms, start_ms + span_ms)``."""
    for index, symbol in enumerate(symbols):
        rng = random.Random(f"{seed}/{symbol}")
        ticks = 2_000_000 + index * 100_000
        step = span_ms / per_symbol
        for n in range(per_symbol):
            ticks = max(100, ticks + rng.randint(-30, 30))
            ts_ms = start_ms + int(n * step + rng.random() * step)
            yield (
                symbol,
                1_000_000 + n,
                EPOCH + timedelta(milliseconds=ts_ms),
                ticks * TICK,
                rng.randint(1, 50_000) * QTY_STEP,
                "ws",
                True,
            )


def copy_rows(conn: psycopg.Connection[Any], rows: Iterator[Row], *, batch: int) -> int:
    """COPY ``rows`` into ``trades``, one transaction (and one trigger run) per ``batch``."""
    total = 0
    done = False
    while not done:
        done = True
        with conn.transaction(), conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
            for n, row in enumerate(rows, 1):
                copy.write_row(row)
                total += 1
                if n == batch:
                    done = False
                    break
    return total
