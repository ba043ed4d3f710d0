"""The event log: a transactional outbox in PostgreSQL with a gap-free, commit-ordered sequence.

Writers call :func:`append_events` as the LAST statement group of the transaction that makes the
data change: it takes the ``event_head`` row lock, so concurrent writers commit in sequence
order and a reader that sees sequence N has already seen every sequence below N. The NATS relay
and ``StreamEvents`` both read from here.
"""

from __future__ import annotations

from binascii import hexlify
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from processor.db import Connection

#: PostgreSQL channel notified (on commit) with the new head sequence after every append.
NOTIFY_CHANNEL = "trading_events"
#: An event's publish time in ms, as its envelope carries it (and resuming clients quote it).
_CREATED_MS = "(extract(epoch FROM created_at) * 1000)::bigint"


class NewEvent(NamedTuple):
    """An event to append: its subject, protobuf type name and serialized payload (a named
    tuple: the feed builds one per trade, and a tuple is built several times faster than a
    frozen dataclass)."""

    symbol: str
    subject: str
    type_name: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An event as stored, with its sequence."""

    seq: int
    symbol: str
    subject: str
    type_name: str
    payload: bytes
    created_ms: int


#: COPY's text format: these characters of a text field are written as escapes.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_FIELDS: dict[tuple[str, str, str], bytes] = {}


def _copy_fields(event: NewEvent) -> bytes:
    """``symbol<TAB>subject<TAB>type<TAB>`` of ``event`` in COPY text form (escaped; events of
    a symbol and type repeat them: cached)."""
    key = (event.symbol, event.subject, event.type_name)
    fields = _COPY_FIELDS.get(key)
    if fields is None:
        fields = "".join(text.translate(_COPY_ESCAPES) + "\t" for text in key).encode()
        if len(_COPY_FIELDS) < 10_000:
            _COPY_FIELDS[key] = fields
    return fields


def copy_rows(first_seq: int, events: Sequence[NewEvent]) -> bytes:
    """``events`` as rows of ``COPY events (seq, symbol, subject, type, payload)`` in text
    format, numbered from ``first_seq``: one ``bytes`` for the batch instead of a
    ``write_row`` call per event (the payload as ``\\x`` and hex, as psycopg writes a bytea)."""
    return b"".join(
        b"%d\t%s\\\\x%s\n" % (first_seq + offset, _copy_fields(event), hexlify(event.payload))
        for offset, event in enumerate(events)
    )


async def append_events(conn: Connection, events: Sequence[NewEvent]) -> int:
    """Append ``events`` in order inside the caller's transaction; return the new head sequence.

    Call it last in the transaction: the head row stays locked until commit.
    """
    cur = conn.cursor()
    if not events:
        await cur.execute("SELECT seq FROM event_head")
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])
    await cur.execute("UPDATE event_head SET seq = seq + %s RETURNING seq", (len(events),))
    row = await cur.fetchone()
    assert row is not None
    head = int(row[0])
    first = head - len(events) + 1
    async with cur.copy("COPY events (seq, symbol, subject, type, payload) FROM STDIN") as copy:
        await copy.write(copy_rows(first, events))
    await cur.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(head)))
    return head


async def head_sequence(conn: Connection) -> int:
    """The sequence of the newest committed event (0 when none)."""
    cur = await conn.execute("SELECT seq FROM event_head")
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def head_and_publish_ms(conn: Connection, seq: int | None) -> tuple[int, int | None]:
    """The newest committed sequence, and when event ``seq`` was published (as its envelope
    says; None when there is no such event, or no ``seq``), in one statement."""
    cur = await conn.execute(
        f"SELECT h.seq, (SELECT {_CREATED_MS} FROM events WHERE seq = %s) FROM event_head h",
        (seq,),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0]), None if row[1] is None else int(row[1])


async def read_events(
    conn: Connection,
    *,
    from_seq: int,
    symbols: Sequence[str],
    limit: int,
    through_seq: int | None = None,
) -> list[LoggedEvent]:
    """Up to ``limit`` events with ``from_seq <= seq <= through_seq`` in sequence order, for
    ``symbols`` (all symbols when empty)."""
    upper = through_seq if through_seq is not None else 2**63 - 1
    cur = await conn.execute(
        f"SELECT seq, symbol, subject, type, payload, {_CREATED_MS}"
        " FROM events WHERE seq >= %s AND seq <= %s"
        " AND (cardinality(%s::text[]) = 0 OR symbol = ANY(%s::text[]))"
        " ORDER BY seq LIMIT %s",
        (from_seq, upper, list(symbols), list(symbols), limit),
    )
    return [
        LoggedEvent(int(s), str(sym), str(subj), str(t), bytes(p), int(c))
        for s, sym, subj, t, p, c in await cur.fetchall()
    ]


async def earliest_sequence(conn: Connection) -> int | None:
    """The oldest retained sequence, or None when the log is empty."""
    cur = await conn.execute("SELECT min(seq) FROM events")
    row = await cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])
