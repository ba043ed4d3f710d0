"""`python -m simulator` as a process: env config, port 0, logs, SIGTERM, truth export, replay."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[2]
BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("SIM_")}


@asynccontextmanager
async def simulator_process(
    env: dict[str, str],
) -> AsyncIterator[tuple[asyncio.subprocess.Process, int, list[str]]]:
    """Start the simulator on a free port; yields (process, port, stderr lines so far)."""
    full_env = {**BASE_ENV, "SIM_PORT": "0", "SIM_HOST": "127.0.0.1", **env}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator",
        cwd=REPO,
        env=full_env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(15):
            while True:
                line = (await process.stderr.readline()).decode()
                assert line, "simulator exited before listening: " + "".join(lines)
                lines.append(line)
                match = re.search(r"event=listening .*port=(\d+)", line)
                if match:
                    break
        yield process, int(match.group(1)), lines
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_process_serves_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    """The process logs its bound port, serves, and on SIGTERM exports the truth and exits 0."""
    truth_file = tmp_path / "truth.jsonl"
    env = {
        "SIM_PROFILE": "clean",
        "SIM_TICKERS": "BTC,DOGE",
        "SIM_RATE": "200",
        "SIM_TRUTH_FILE": str(truth_file),
    }
    async with simulator_process(env) as (process, port, lines):
        assert port > 0
        assert "event=listening host=127.0.0.1" in lines[-1]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/tickers") as response:
                assert await response.json() == ["BTC", "DOGE"]
            await asyncio.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert process.stderr is not None
            rest = (await process.stderr.read()).decode()
            assert await process.wait() == 0
    assert "event=truth_exported" in rest
    assert "event=stopped" in rest
    exported = truth_file.read_text().splitlines()
    assert exported
    first = json.loads(exported[0])
    assert first["ticker"] in ("BTC", "DOGE")
    assert isinstance(first["price"], str)
    assert Decimal(first["price"]) > 0


async def test_replay_file_is_served(tmp_path: Path) -> None:
    """SIM_REPLAY_FILE replays the recorded trades (ids and decimals intact, ts shifted)."""
    replay = tmp_path / "tape.jsonl"
    replay.write_text(
        "".join(
            json.dumps(
                {
                    "ticker": "XBT",
                    "ts": 1_000 + 10 * i,
                    "tradeId": 500 + 2 * i,
                    "price": f"100.{i:02d}",
                    "quantity": "0.00000001",
                }
            )
            + "\n"
            for i in range(20)
        )
    )
    env = {"SIM_PROFILE": "clean", "SIM_REPLAY_FILE": str(replay), "SIM_REST_LAG_MS": "0"}
    async with simulator_process(env) as (process, port, _), aiohttp.ClientSession() as session:
        await asyncio.sleep(0.5)
        base = f"http://127.0.0.1:{port}"
        async with session.get(f"{base}/tickers") as response:
            assert await response.json() == ["XBT"]
        async with session.get(f"{base}/trades", params={"ticker": "XBT", "startTime": "0"}) as r:
            trades = json.loads(await r.text(), parse_float=Decimal)
        assert [t["tradeId"] for t in trades] == [500 + 2 * i for i in range(20)]
        assert [t["price"] for t in trades] == [Decimal(f"100.{i:02d}") for i in range(20)]
        assert trades[-1]["ts"] - trades[0]["ts"] == 190
        assert trades[0]["ts"] > 10**12
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            assert await process.wait() == 0


async def test_bad_config_exits_with_usage_error() -> None:
    """An invalid env value makes the process exit 2 with a message naming the variable."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator",
        cwd=REPO,
        env={**BASE_ENV, "SIM_PORT": "0", "SIM_PROFILE": "nasty"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(15):
        _, stderr = await process.communicate()
    assert process.returncode == 2
    assert b"unknown profile" in stderr


async def test_help_lists_env_backed_flags() -> None:
    """`python -m simulator --help` exits 0 and documents flags with their env vars."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator",
        "--help",
        cwd=REPO,
        env=BASE_ENV,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(15):
        stdout, _ = await process.communicate()
    assert process.returncode == 0
    assert b"--rest-lag-ms" in stdout
    assert b"SIM_REST_LAG_MS" in stdout
