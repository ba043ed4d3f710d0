"""`python -m proxy` as a process: serves on a free port, answers, exits 0 on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from typing import Any

import grpc
from trading.v1 import proxy_pb2, proxy_pb2_grpc

SERVING = re.compile(rb"event=serving .*address=(\S+)")


async def test_the_process_serves_and_stops_cleanly_on_sigterm(harness: Any) -> None:
    """It logs its address, fetches a window, and exits 0 after SIGTERM."""
    async with harness.sim("clean") as sim:
        env = {**os.environ, "PROXY_PORT": "0", "PROVIDER_REST_URL": sim.url, "PROXY_GRACE": "1s"}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "proxy", env=env, stderr=asyncio.subprocess.PIPE
        )
        try:
            assert process.stderr is not None
            async with asyncio.timeout(30):
                while True:
                    line = await process.stderr.readline()
                    assert line, "the proxy exited before serving"
                    if match := SERVING.search(line):
                        break
            async with grpc.aio.insecure_channel(match.group(1).decode()) as channel:
                stub = proxy_pb2_grpc.ProxyServiceStub(channel)
                result = await harness.fetch(stub, "BTC", sim.start_ms, sim.start_ms + 3000)
                harness.assert_same_trades(
                    result.trades, sim.truth("BTC", sim.start_ms, sim.start_ms + 3000)
                )
                stats = await stub.GetStats(proxy_pb2.GetStatsRequest())
                assert stats.windows_completed == 1
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                _, stderr = await process.communicate()
            assert process.returncode == 0, stderr.decode()
            assert b"event=stopped" in stderr
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
