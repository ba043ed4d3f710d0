"""The embedded nats-server: JetStream enabled and persistent, separate ports, shutdown."""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path

import nats
import pytest

import devstack.nats
from devstack.nats import EmbeddedNats
from devstack.ports import free_port, port_is_open


async def _stream_messages(url: str, stream: str) -> int:
    nc = await nats.connect(url, allow_reconnect=False)
    try:
        info = await nc.jetstream().stream_info(stream)
        return int(info.state.messages)
    finally:
        await nc.close()


async def test_jetstream_rejects_duplicate_msg_id(nats_url: str) -> None:
    """A second publish with the same Nats-Msg-Id is acked as duplicate and not stored."""
    stream = f"DEDUP_{uuid.uuid4().hex[:8]}"
    nc = await nats.connect(nats_url, allow_reconnect=False)
    try:
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[f"{stream}.>"])
        try:
            headers = {"Nats-Msg-Id": "trade-1"}
            first = await js.publish(f"{stream}.x", b"1", headers=headers)
            second = await js.publish(f"{stream}.x", b"1", headers=headers)
            assert not first.duplicate
            assert second.duplicate is True
            assert (await js.stream_info(stream)).state.messages == 1
        finally:
            await js.delete_stream(stream)
    finally:
        await nc.close()


async def test_restart_on_same_store_dir_keeps_streams(tmp_path: Path) -> None:
    """Streams and messages survive a restart on the same store directory."""
    first = await asyncio.to_thread(EmbeddedNats(tmp_path / "js").start)
    try:
        nc = await nats.connect(first.url, allow_reconnect=False)
        js = nc.jetstream()
        await js.add_stream(name="KEPT", subjects=["kept.>"])
        await js.publish("kept.a", b"a")
        await nc.close()
    finally:
        await asyncio.to_thread(first.stop)
    second = await asyncio.to_thread(EmbeddedNats(tmp_path / "js").start)
    try:
        assert await _stream_messages(second.url, "KEPT") == 1
    finally:
        await asyncio.to_thread(second.stop)


def test_two_servers_run_at_once(tmp_path: Path) -> None:
    """Two servers run side by side on different ports."""
    with EmbeddedNats(tmp_path / "a") as one, EmbeddedNats(tmp_path / "b") as two:
        assert one.port != two.port
        assert port_is_open(one.port)
        assert port_is_open(two.port)


def test_stop_terminates_server_and_removes_temp_dir() -> None:
    """stop() ends the process, closes the port and deletes a temporary store."""
    server = EmbeddedNats().start()
    port, store_dir = server.port, server.store_dir
    assert port_is_open(port)
    server.stop()
    assert not server.running
    assert not port_is_open(port)
    assert not store_dir.exists()


def test_retries_on_another_port_when_port_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the free port is grabbed before the server binds it, startup retries elsewhere."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        monkeypatch.setattr(devstack.nats, "free_port", lambda: next(ports, None) or free_port())
        with EmbeddedNats(tmp_path / "js") as server:
            assert server.port != taken
            assert port_is_open(server.port)
