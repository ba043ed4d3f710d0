"""``python -m devstack``: run the whole stack on embedded defaults until Ctrl-C or SIGTERM.

Starts PostgreSQL and NATS (data in ``--data-dir``, resumed by the next run), the simulator,
the proxy, the processor and the VWAP service as processes, prints their addresses and
``grpcurl`` commands, then a live status every ``--interval`` seconds. Environment variables
override everything: ``DATABASE_URL`` / ``NATS_URL`` use external servers,
``PROVIDER_REST_URL`` / ``PROVIDER_WS_URL`` an external provider (no simulator), ``SIM_*``
configure the simulator, and every service's own variables pass through.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Final, TextIO

from devstack.grpcurl import grpcurl_commands
from devstack.process import EmbeddedServerError
from devstack.stack import DEFAULT_PORTS, Stack, StackError
from devstack.status import StatusReader, render_line, render_table
from processor.config import SETTINGS as PROCESSOR_SETTINGS
from proxy.config import SETTINGS as PROXY_SETTINGS
from simulator.config import DEFAULT_PROFILE
from simulator.profiles import PROFILE_NAMES
from vwap.config import SETTINGS as VWAP_SETTINGS

#: Variables of the services that pass from our environment to them, over the stack's choices.
SERVICE_VARIABLES: Final = frozenset(
    s.name for s in (*PROXY_SETTINGS, *PROCESSOR_SETTINGS, *VWAP_SETTINGS)
)


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument(
        "--profile",
        default=os.environ.get("SIM_PROFILE", DEFAULT_PROFILE),
        choices=PROFILE_NAMES,
        help="fault profile of the simulator [env SIM_PROFILE, default %(default)s]",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".stack-data"),
        help="PostgreSQL and NATS data and the logs (logs/<name>.log) [default %(default)s]",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=2.0,
        help="seconds between status refreshes [default %(default)s]",
    )
    return parser


def overrides(environ: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The simulator's ``SIM_*`` variables and the services' variables set in ``environ``."""
    sim_env = {k: v for k, v in environ.items() if k.startswith("SIM_")}
    extra_env = {k: v for k, v in environ.items() if k in SERVICE_VARIABLES}
    return sim_env, extra_env


def _print_banner(stack: Stack, out: TextIO) -> None:
    print("stack ready", file=out)
    print(f"  postgres   {stack.database_url}", file=out)
    print(f"  nats       {stack.nats_url}", file=out)
    print(f"  provider   {stack.provider_rest_url}  {stack.provider_ws_url}", file=out)
    for name, address in stack.addresses.items():
        print(f"  {name:<10} {address}", file=out)
    print(f"  logs       {stack.log_dir}/<name>.log", file=out)
    print('\ntry (grpcurl is in .venv/bin: export PATH="$PWD/.venv/bin:$PATH"):', file=out)
    for command in grpcurl_commands(stack.addresses):
        print(f"  {command}", file=out)
    print("\nCtrl-C stops the stack.\n", file=out, flush=True)


def _watch(stack: Stack, stop: threading.Event, interval: float, out: TextIO) -> None:
    """Print the status now and every ``interval`` seconds until ``stop`` is set."""
    redraw = out.isatty()
    drawn = 0
    with StatusReader(
        processor_address=stack.addresses["processor"], vwap_address=stack.addresses["vwap"]
    ) as reader:
        while True:
            status = reader.read()
            clock = time.strftime("%H:%M:%S")
            if redraw:
                lines = render_table(status, clock)
                # Move up over the previous table and clear to the end of the screen.
                prefix = f"\x1b[{drawn}F\x1b[J" if drawn else ""
                out.write(prefix + "\n".join(lines) + "\n")
                drawn = len(lines)
            else:
                out.write(render_line(status, clock) + "\n")
            out.flush()
            if stop.wait(interval):
                return


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run until SIGINT or SIGTERM, then stop everything and exit 0."""
    args = build_parser().parse_args(argv)
    sim_env, extra_env = overrides(os.environ)
    sim_env.pop("SIM_PROFILE", None)  # --profile already defaults to it
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    stack = Stack(
        args.data_dir,
        profile=args.profile,
        sim_env=sim_env,
        extra_env=extra_env,
        ports=DEFAULT_PORTS,
    )
    print(f"starting the stack in {stack.data_dir} (profile {args.profile})", flush=True)
    try:
        stack.start()
        if not stop.is_set():
            _print_banner(stack, sys.stdout)
            _watch(stack, stop, args.interval, sys.stdout)
    except (StackError, EmbeddedServerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        # The terminal may be gone (SIGHUP): stopping must not depend on printing.
        with contextlib.suppress(OSError):
            print("stopping: vwap, processor, proxy, simulator, nats, postgres", flush=True)
        stack.stop()
    codes = " ".join(f"{name}={code}" for name, code in stack.exit_codes.items())
    print(f"stopped ({codes})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
