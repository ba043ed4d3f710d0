"""FetchTrades against the real simulator: exact windows, ties, long windows, empty, stuck."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest


async def test_a_window_longer_than_many_pages_equals_the_truth(harness: Any) -> None:
    """A 15 s window of a dense tape spans many pages and equals the truth exactly."""
    async with harness.sim("clean") as sim, harness.proxy(sim.url) as stub:
        start, end = sim.start_ms + 2000, sim.start_ms + 17_000
        result = await harness.fetch(stub, "BTC", start, end)
        truth = sim.truth("BTC", start, end)
        assert len(truth) > 500
        harness.assert_same_trades(result.trades, truth)
        assert result.complete.total_trades == len(truth)
        assert result.complete.progress.pages >= len(truth) // 100 + 1
        assert len(result.pages) == result.complete.progress.pages


def replay_rows(timestamps: list[int]) -> list[tuple[int, int, str, str]]:
    """Replay rows at ``timestamps`` (offsets), ids increasing, prices with many digits."""
    return [
        (1_700_000_000_000 + ts, 5000 + 2 * i, f"27123.{i:04d}00000000000001", f"0.{i + 1:08d}")
        for i, ts in enumerate(sorted(timestamps))
    ]


async def test_ties_straddling_the_page_boundary_are_streamed_once(
    harness: Any, tmp_path: Path
) -> None:
    """Ten trades in one ms across the 100-trade boundary arrive once each, in order."""
    rows = replay_rows([*range(95), *[95] * 10, *range(96, 156)])
    replay = harness.write_replay(tmp_path / "ties.jsonl", rows)
    async with (
        harness.sim(replay_file=replay, history_ms=1000) as sim,
        harness.proxy(sim.url) as stub,
    ):
        start, end = sim.start_ms, sim.start_ms + 1000
        result = await harness.fetch(stub, "BTC", start, end)
        harness.assert_same_trades(result.trades, sim.truth("BTC", start, end))
        assert [len(page.trades) for page in result.pages] == [100, 65]
        assert result.complete.total_trades == 165
        assert harness.ms_of(result.pages[0].progress.cursor) == start + 95


async def test_an_empty_window_completes_with_zero_trades(harness: Any) -> None:
    """A window before the first trade completes after one page with total 0."""
    async with harness.sim("clean") as sim, harness.proxy(sim.url) as stub:
        result = await harness.fetch(stub, "BTC", sim.start_ms - 60_000, sim.start_ms - 1)
        assert result.complete.total_trades == 0
        assert result.complete.progress.pages == 1
        assert result.trades == []


async def test_more_than_a_page_in_one_millisecond_fails_precondition_without_looping(
    harness: Any, tmp_path: Path
) -> None:
    """150 trades in one ms end the stream with FAILED_PRECONDITION naming the ms; no loop."""
    rows = replay_rows([*range(40), *[50] * 150, *range(60, 80)])
    replay = harness.write_replay(tmp_path / "stuck.jsonl", rows)
    async with (
        harness.sim(replay_file=replay, history_ms=1000) as sim,
        harness.proxy(sim.url) as stub,
    ):
        start = sim.start_ms
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await harness.fetch(stub, "BTC", start, start + 1000)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert str(start + 50) in (caught.value.details() or "")
        assert "100" in (caught.value.details() or "")
        assert sim.running.stats.rest.requests_total <= 2
