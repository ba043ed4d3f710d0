"""The event log's batch COPY: every field read back exactly as appended, whatever its text."""

from __future__ import annotations

from processor.db import Pool
from processor.event_log import NewEvent, append_events, copy_rows, read_events


def test_rows_are_copy_text_with_escapes_and_hex_payloads() -> None:
    rows = copy_rows(7, [NewEvent("A\tB", "s.x\\y", "t\nu", b"\x00\xff\\\t")])
    assert rows == b"7\tA\\tB\ts.x\\\\y\tt\\nu\t\\\\x00ff5c09\n"


async def test_appended_events_read_back_exactly(pool: Pool) -> None:
    """Texts with COPY's special characters and non-ASCII, payloads of every byte and empty:
    each event comes back with its sequence, in order, unchanged."""
    events = [
        NewEvent("BTC", "trading.trade.BTC", "trading.v1.TradeEvent", bytes(range(256))),
        NewEvent("tab\there", "sub\\ject", "line\nbreak\rreturn", b""),
        NewEvent("ÉTH", "trading.trade.ÉTH", "trading.v1.CorrectionEvent", b"\\x00\n\t"),
        NewEvent("BTC", "trading.trade.BTC", "trading.v1.TradeEvent", b"\x00" * 3),
    ]
    async with pool.connection() as conn, conn.transaction():
        first_head = await append_events(conn, events[:1])
        head = await append_events(conn, events[1:])
    assert (first_head, head) == (1, 4)
    async with pool.connection() as conn:
        logged = await read_events(conn, from_seq=1, symbols=(), limit=10)
    assert [(e.seq, e.symbol, e.subject, e.type_name, e.payload) for e in logged] == [
        (seq, *event) for seq, event in enumerate(events, start=1)
    ]
