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
    state = await log_state(conn, seq)
    return state.head, state.published_ms


class LogState(NamedTuple):
    """Where the event log stands, as one statement saw it."""

    #: The newest committed sequence (0: none yet).
    head: int
    #: The oldest sequence retained: every event from it on is in the log.
    floor: int
    #: When the event asked about was published, in ms (None: not in the log, or not asked;
    #: for the newest event retention removed, floor - 1, as retention recorded it).
    published_ms: int | None


async def log_state(conn: Connection, seq: int | None) -> LogState:
    """The log's head and floor, and when event ``seq`` was published, in one statement."""
    cur = await conn.execute(
        f"SELECT h.seq, f.seq, coalesce((SELECT {_CREATED_MS} FROM events WHERE seq = %s),"
        " CASE WHEN %s = f.seq - 1 THEN f.below_published_ms END)"
        " FROM event_head h, event_log_floor f",
        (seq, seq),
    )
    row = await cur.fetchone()
    assert row is not None
    return LogState(int(row[0]), int(row[1]), None if row[2] is None else int(row[2]))


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


class RetainedRead(NamedTuple):
    """What :func:`read_retained_events` saw, in one snapshot."""

    #: The oldest sequence retained.
    floor: int
    #: When the read's last sequence (``through_seq``) was published (None: not in the log).
    through_published_ms: int | None
    events: list[LoggedEvent]


async def read_retained_events(
    conn: Connection, *, from_seq: int, symbols: Sequence[str], limit: int, through_seq: int
) -> RetainedRead:
    """The log's floor, when event ``through_seq`` was published and, as :func:`read_events`,
    up to ``limit`` events from ``from_seq`` through ``through_seq``, in one statement (one
    snapshot): when the floor is at most ``from_seq``, retention removed none of the events
    the read could return."""
    cur = await conn.execute(
        "SELECT f.seq,"
        f" (SELECT {_CREATED_MS} FROM events WHERE seq = %s),"
        " e.seq, e.symbol, e.subject, e.type, e.payload, e.created"
        " FROM event_log_floor f LEFT JOIN LATERAL ("
        f"  SELECT seq, symbol, subject, type, payload, {_CREATED_MS} AS created"
        "   FROM events WHERE seq >= %s AND seq <= %s"
        "   AND (cardinality(%s::text[]) = 0 OR symbol = ANY(%s::text[]))"
        "   ORDER BY seq LIMIT %s"
        " ) e ON true ORDER BY e.seq",
        (through_seq, from_seq, through_seq, list(symbols), list(symbols), limit),
    )
    rows = await cur.fetchall()
    floor, through_ms = rows[0][0], rows[0][1]
    return RetainedRead(
        int(floor),
        None if through_ms is None else int(through_ms),
        [
            LoggedEvent(int(s), str(sym), str(subj), str(t), bytes(p), int(c))
            for _, _, s, sym, subj, t, p, c in rows
            if s is not None
        ],
    )


async def prune_events(conn: Connection, *, retention_ms: int, limit: int) -> int:
    """Delete up to ``limit`` of the log's oldest events, those published more than
    ``retention_ms`` ago (database clock) that the NATS relay has published, except the last
    one it published (so the log always holds its newest event, whose publish time
    StreamEvents names for clients to quote when resuming after it), and raise the floor past
    them, recording when the newest of them was published (what a client resuming at the
    floor quotes), in one transaction; how many were deleted. Only a prefix is removed: an old event
    after a recent one (a long transaction's) waits for the recent one."""
    async with conn.transaction():
        cur = await conn.execute("SELECT seq FROM event_log_floor FOR UPDATE")
        floor_row = await cur.fetchone()
        assert floor_row is not None
        floor = int(floor_row[0])
        cur = await conn.execute(
            "SELECT seq, created_at >= now() - %s * INTERVAL '1 millisecond',"
            f" {_CREATED_MS} FROM events"
            " WHERE seq >= %s AND seq < (SELECT published_seq FROM event_relay)"
            " ORDER BY seq LIMIT %s",
            (retention_ms, floor, limit),
        )
        upto, below_published_ms = floor, None
        for seq, recent, created_ms in await cur.fetchall():
            if recent:
                break
            upto, below_published_ms = int(seq) + 1, int(created_ms)
        if upto == floor:
            return 0
        cur = await conn.execute("DELETE FROM events WHERE seq >= %s AND seq < %s", (floor, upto))
        deleted = cur.rowcount
        await conn.execute(
            "UPDATE event_log_floor SET seq = %s, below_published_ms = %s",
            (upto, below_published_ms),
        )
        return deleted
