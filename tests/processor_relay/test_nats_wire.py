"""The relay's raw HPUB batches: the same messages as nats-py's ``publish``, on a real server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError
from nats.protocol.command import hpub_cmd

from processor.events import SEQUENCE_HEADER, STREAM_SUBJECTS, TYPE_HEADER
from processor.nats_wire import UnsafeText, hpub_batch, send_raw

TYPE = "trading.v1.TradeEvent"


def _headers(seq: int) -> dict[str, str]:
    return {"Nats-Msg-Id": f"evt-{seq}", TYPE_HEADER: TYPE, SEQUENCE_HEADER: str(seq)}


def _messages(first: int, count: int) -> list[tuple[str, str, int, bytes]]:
    subjects = ("trading.trade.BTC", "trading.trade.ETH", "trading.correction.BTC")
    return [
        (subjects[seq % 3], TYPE, seq, bytes(range(seq % 7)) + b"\r\n payload \x00" * (seq % 3))
        for seq in range(first, first + count)
    ]


def test_a_command_with_a_reply_is_what_nats_py_writes() -> None:
    """With a reply subject, the bytes equal nats-py's own HPUB for the same headers (the
    header block built as ``publish`` builds it)."""
    [message] = _messages(41, 1)
    subject, _, seq, payload = message
    header = b"NATS/1.0\r\n"
    for key, value in _headers(seq).items():
        header += f"{key}: {value}\r\n".encode()
    header += b"\r\n"
    expected = hpub_cmd(subject, f"_INBOX.x.{seq}", header, payload)
    commands = hpub_batch([message], "_INBOX.x.", {seq})
    assert commands.data == expected
    assert commands.largest == len(header) + len(payload)


@pytest.mark.parametrize("bad", ["trading.trade.B C", "trading.trade.\r\nPUB", "", "a\tb"])
def test_text_that_would_break_the_protocol_is_refused(bad: str) -> None:
    with pytest.raises(UnsafeText):
        hpub_batch([(bad, TYPE, 1, b"x")], "_INBOX.x.", set())
    with pytest.raises(UnsafeText):
        hpub_batch([("trading.trade.BTC", bad, 1, b"x")], "_INBOX.x.", set())


Publish = Callable[[NatsClient, str], Awaitable[None]]


def _collect(into: list[Msg]) -> Callable[[Msg], Awaitable[None]]:
    async def append(msg: Msg) -> None:
        into.append(msg)

    return append


async def _received(
    nats_url: str, publish: Publish, *, acks_expected: int
) -> tuple[list[Msg], list[Msg]]:
    """Messages a core subscriber to ``trading.>`` got from ``publish(nc, inbox_prefix)``, and
    the JetStream acknowledgements that came back on the inbox (waiting up to 10 s for 30
    messages and ``acks_expected`` acknowledgements; a busy machine delays the latter)."""
    nc = await nats.connect(nats_url)
    try:
        seen: list[Msg] = []
        acks: list[Msg] = []
        inbox = nc.new_inbox()
        watcher = await nats.connect(nats_url)
        try:
            await watcher.subscribe(STREAM_SUBJECTS, cb=_collect(seen))
            await watcher.flush()
            await nc.subscribe(inbox + ".*", cb=_collect(acks))
            await publish(nc, inbox + ".")
            await nc.flush()
            for _ in range(1000):
                if len(seen) >= 30 and len(acks) >= acks_expected:
                    break
                await asyncio.sleep(0.01)
        finally:
            await watcher.close()
        return seen, acks
    finally:
        await nc.close()


async def test_a_raw_batch_delivers_what_publish_delivers(nats_url: str, stream_name: str) -> None:
    """30 messages sent raw and 30 sent with ``publish``: same subjects, headers and payloads in
    the same order; JetStream stores each once and answers exactly the replies asked for."""
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().add_stream(name=stream_name, subjects=[STREAM_SUBJECTS])
    finally:
        await nc.close()
    raw_batch = _messages(1, 30)
    asked = {5, 30}

    async def raw(nc: NatsClient, prefix: str) -> None:
        await send_raw(nc, hpub_batch(raw_batch, prefix, asked))

    async def public(nc: NatsClient, prefix: str) -> None:
        for subject, _, seq, payload in raw_batch:  # the same messages, 100 sequences on
            reply = prefix + str(seq + 100) if seq in asked else ""
            await nc.publish(subject, payload, reply=reply, headers=_headers(seq + 100))

    raw_seen, raw_acks = await _received(nats_url, raw, acks_expected=len(asked))
    public_seen, public_acks = await _received(nats_url, public, acks_expected=len(asked))

    def shape(msg: Msg, offset: int) -> tuple[str, dict[str, str] | None, bytes]:
        headers = dict(msg.headers or {})
        seq = int(headers[SEQUENCE_HEADER]) - offset
        headers |= {"Nats-Msg-Id": f"evt-{seq}", SEQUENCE_HEADER: str(seq)}
        return msg.subject, headers, msg.data

    assert [shape(m, 0) for m in raw_seen] == [shape(m, 100) for m in public_seen]
    assert [(s, _headers(seq), p) for s, _, seq, p in raw_batch] == [shape(m, 0) for m in raw_seen]
    assert sorted(int(m.subject.rpartition(".")[2]) for m in raw_acks) == sorted(asked)
    assert sorted(int(m.subject.rpartition(".")[2]) - 100 for m in public_acks) == sorted(asked)
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info(stream_name)
        assert info.state.messages == 60
    finally:
        await nc.close()


async def test_a_closed_connection_is_refused(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    await nc.close()
    with pytest.raises(ConnectionClosedError):
        await send_raw(nc, hpub_batch(_messages(1, 2), "_INBOX.x.", set()))
