"""The shared entry point: a started service's start-up heap is frozen out of the collector;
a service that cannot start says why in one line."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from tradekit.entry import StartupError, redacted_url, run_service_main, serve_until_signal


def _collector_walks(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())


@asynccontextmanager
async def _probed(look: Callable[[], object]) -> AsyncIterator[None]:
    """A service that, once serve_until_signal is past its freeze, calls ``look`` and then
    sends itself SIGTERM."""

    async def probe() -> None:
        await asyncio.sleep(0)  # runs once serve_until_signal is past the freeze
        look()
        os.kill(os.getpid(), signal.SIGTERM)

    task = asyncio.create_task(probe())
    try:
        yield
    finally:
        await task


async def test_a_started_service_freezes_its_startup_heap_then_stops_on_sigterm() -> None:
    """Objects made at start-up are out of the collector's walks while the service runs;
    SIGTERM then ends serving."""
    startup_object: list[list[str]] = [["made at start-up"]]
    walked: list[bool] = []
    gc.unfreeze()
    assert _collector_walks(startup_object)
    try:
        service = _probed(lambda: walked.append(_collector_walks(startup_object)))
        await asyncio.wait_for(serve_until_signal(service), 10)
    finally:
        gc.unfreeze()
    assert walked == [False]


async def test_a_service_may_set_the_collectors_thresholds() -> None:
    """``gc_thresholds`` are in force while the service runs (the processor's are its own)."""
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []
    try:
        service = _probed(lambda: seen.append(gc.get_threshold()))
        await asyncio.wait_for(serve_until_signal(service, gc_thresholds=(12_345, 11, 13)), 10)
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
    assert seen == [(12_345, 11, 13)]
    assert before != (12_345, 11, 13)


@dataclass(frozen=True)
class _Config:
    log_level: str = "info"


def test_a_service_that_cannot_start_says_why_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A StartupError raised while starting (alone or inside a task group's group) exits 1
    with one log line saying why, no traceback."""

    @asynccontextmanager
    async def unreachable(config: _Config) -> AsyncIterator[None]:
        raise StartupError("cannot reach the database at postgresql://u:***@h/db")
        yield  # pragma: no cover - never reached

    @asynccontextmanager
    async def in_a_group(config: _Config) -> AsyncIterator[None]:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(unreachable(config).__aenter__())
        yield  # pragma: no cover - never reached

    for run in (unreachable, in_a_group):
        status = run_service_main(
            prog="python -m x",
            description="x",
            settings=(),
            load_config=lambda env: _Config(),
            run=run,
            argv=[],
        )
        lines = capsys.readouterr().err.splitlines()
        assert status == 1
        assert len(lines) == 1
        assert "event=cannot_start" in lines[0]
        assert 'error="cannot reach the database at postgresql://u:***@h/db"' in lines[0]


def test_urls_in_messages_hide_the_password() -> None:
    """The password of a URL's user part is masked; the rest is kept."""
    assert redacted_url("postgresql://app:s3cret@db:5432/trading?sslmode=require") == (
        "postgresql://app:***@db:5432/trading?sslmode=require"
    )
    assert redacted_url("postgresql://postgres@127.0.0.1:5432/trading") == (
        "postgresql://postgres@127.0.0.1:5432/trading"
    )
