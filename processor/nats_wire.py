"""A batch of event-log messages as NATS protocol bytes, and handing them to a connection.

nats-py's ``publish`` builds each message's headers from a dict, validates every key and value
and awaits three coroutines per message: for the relay, which publishes every trade's event,
that was most of its CPU. Here a batch becomes one ``bytes`` of ``HPUB`` commands (the NATS
client protocol: ``HPUB <subject> [reply] <header bytes> <total bytes>``, then the headers
``NATS/1.0`` and ``Key: value`` lines, a blank line, the payload): the bytes ``publish``
sends for the same message (tested against it and a real server), queued on the connection at
once.

Everything written raw is checked first: subjects and header values come from our own event
log, but a space or line break in one would corrupt the protocol stream, so any such text is
refused (:class:`UnsafeText`) instead of sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from nats.aio.client import Client as NatsClient
from nats.errors import ConnectionClosedError, ConnectionReconnectingError, MaxPayloadError

from processor.events import SEQUENCE_HEADER, TYPE_HEADER

#: The header block's fixed start; every value after it is checked by :func:`_safe`.
_MSG_ID = b"NATS/1.0\r\nNats-Msg-Id: evt-"
_TYPE = ("\r\n" + TYPE_HEADER + ": ").encode()
_SEQUENCE = ("\r\n" + SEQUENCE_HEADER + ": ").encode()
_END = b"\r\n\r\n"
_FORBIDDEN = frozenset(" \t\r\n")


class UnsafeText(ValueError):
    """A subject, reply subject or header value that would break the NATS protocol."""


_checked: set[str] = set()


def _safe(text: str) -> str:
    """``text`` when it can be written raw (non-empty, no whitespace); raises otherwise.
    Subjects and type names repeat: each is checked once."""
    if text in _checked:
        return text
    if not text or not _FORBIDDEN.isdisjoint(text) or not text.isprintable():
        raise UnsafeText(f"cannot publish {text!r} on NATS: empty, or holds whitespace or controls")
    if len(_checked) < 10_000:
        _checked.add(text)
    return text


class Commands(NamedTuple):
    """Protocol bytes of a batch, and its largest message (headers and payload) in bytes."""

    data: bytes
    largest: int


def hpub_batch(
    messages: Iterable[tuple[str, str, int, bytes]], reply_prefix: str, ask: set[int]
) -> Commands:
    """``HPUB`` commands for ``(subject, type_name, seq, payload)`` messages, each with
    ``Nats-Msg-Id: evt-<seq>``, the event type and sequence headers, and the reply subject
    ``<reply_prefix><seq>`` when ``seq`` is in ``ask`` (none otherwise)."""
    largest = 0
    parts: list[bytes] = []
    append = parts.append
    prefix = _safe(reply_prefix)
    for subject, type_name, seq, payload in messages:
        number = str(seq)
        header = b"".join(
            (_MSG_ID, number.encode(), _TYPE, _safe(type_name).encode(), _SEQUENCE,
             number.encode(), _END)
        )  # fmt: skip
        size = len(header)
        total = size + len(payload)
        largest = max(largest, total)
        reply = prefix + number + " " if seq in ask else ""
        append(f"HPUB {_safe(subject)} {reply}{size} {total}\r\n".encode())
        append(header)
        append(payload)
        append(b"\r\n")
    return Commands(b"".join(parts), largest)


async def send_raw(nc: NatsClient, commands: Commands) -> None:
    """Queue protocol ``commands`` on ``nc`` as ``publish`` queues one message, and let its
    flusher write them. Refuses as ``publish`` would: a closed connection, a message larger
    than the server accepts; and, unlike ``publish``, a connection that is reconnecting (the
    relay then retries the batch, instead of buffering it for a server that may not ask)."""
    if nc.is_closed:
        raise ConnectionClosedError
    if not nc.is_connected:
        raise ConnectionReconnectingError
    if commands.largest > nc.max_payload:
        raise MaxPayloadError
    # nats-py has no public call for bytes already in protocol form; these two are what
    # ``publish`` itself ends with (nats-py is pinned in requirements.lock, and
    # tests/processor_relay/test_nats_wire.py checks the result on a real server).
    await nc._send_command(commands.data)
    if nc._flush_queue is not None and nc._flush_queue.empty():
        await nc._flush_pending()
