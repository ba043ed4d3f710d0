"""The simulator in its own process (its own GIL), with a clock the benchmark drives.

    python -m bench.sim_process --tickers BTC,ETH --rate 5000 --profile clean

Prints ``ready <port> <start_ms>`` once listening. The clock stands still at ``start_ms`` until
a command on stdin moves it:

- ``jump <ms>``: move the clock ``ms`` ahead and release that stretch of the tape at once (a
  backlog the clients then receive as fast as they read); prints ``released <n>``;
- ``run``: let the clock follow the wall clock from where it stands (live trades);
- ``hold``: stop the clock again (no more trades); prints ``held <total released>``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from collections.abc import Sequence

from simulator.app import run_simulator
from simulator.config import SimConfig
from simulator.tape import TapeParams


class DrivenClock:
    """A clock that stands still or follows the wall clock from a base, on command."""

    def __init__(self, start_ms: int) -> None:
        self.base_ms = start_ms
        self._running_since: float | None = None

    def __call__(self) -> int:
        if self._running_since is None:
            return self.base_ms
        return self.base_ms + int((time.monotonic() - self._running_since) * 1000)

    def jump(self, ms: int) -> None:
        """Move ahead by ``ms`` (standing still afterwards)."""
        self.hold()
        self.base_ms += ms

    def run(self) -> None:
        """Follow the wall clock from now on."""
        if self._running_since is None:
            self._running_since = time.monotonic()

    def hold(self) -> None:
        """Stand still at the current time."""
        self.base_ms = self()
        self._running_since = None


async def serve(config: SimConfig) -> None:
    """Run the simulator and obey stdin until it closes."""
    clock = DrivenClock(int(time.time() * 1000))
    async with run_simulator(config, clock=clock) as sim:
        print(f"ready {sim.port} {sim.start_ms}", flush=True)
        while line := await asyncio.to_thread(sys.stdin.readline):
            command, _, arg = line.strip().partition(" ")
            if command == "jump":
                clock.jump(int(arg))
                print(f"released {len(sim.hub.release())}", flush=True)
            elif command == "run":
                clock.run()
            elif command == "hold":
                clock.hold()
                sim.hub.release()
                print(f"held {sum(sim.stats.released.values())}", flush=True)


class SimProcess:
    """Parent side: start ``python -m bench.sim_process`` and send it commands.

    async with SimProcess(["--rate", "5000"]) as sim:
        await sim.command("jump 10000")  # -> "released 200123"
    """

    def __init__(self, args: Sequence[str]) -> None:
        self._args = list(args)
        self._proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.start_ms = 0

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """The WebSocket feed of every ticker."""
        return f"ws://127.0.0.1:{self.port}/stream"

    @property
    def pid(self) -> int:
        """Process id of the simulator."""
        assert self._proc is not None
        return self._proc.pid

    async def _line(self) -> str:
        assert self._proc is not None
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), 120)
        if not line:
            raise RuntimeError("the simulator process exited")
        return line.decode().strip()

    async def command(self, text: str) -> str:
        """Send one command; its reply line ("" for commands without one)."""
        assert self._proc is not None
        assert self._proc.stdin is not None
        self._proc.stdin.write(text.encode() + b"\n")
        await self._proc.stdin.drain()
        return "" if text == "run" else await self._line()

    async def __aenter__(self) -> SimProcess:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.sim_process",
            *self._args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        _, port, start = (await self._line()).split()
        self.port, self.start_ms = int(port), int(start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags and serve."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickers", default="BTC,ETH,SOL,XRP")
    parser.add_argument("--rate", type=float, default=5000.0, help="trades/s per ticker")
    parser.add_argument("--profile", default="clean")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rest-lag-ms", type=int, default=0)
    args = parser.parse_args(argv)
    config = SimConfig.for_profile(
        args.profile,
        port=0,
        seed=args.seed,
        tickers=tuple(args.tickers.split(",")),
        tape=dataclasses.replace(TapeParams(), rate=args.rate, burst_rate=0.0),
        rest_lag_ms=args.rest_lag_ms,
        max_backlog=50_000_000,
        shutdown_timeout_s=0.1,
        log_level="WARNING",
    )
    asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
