"""The one way every service starts: ``python -m <service>``.

Parse ``--help``/``--settings-table``, read the configuration from the environment once, set up
logs, install the SIGTERM/SIGINT handlers BEFORE the server reports SERVING, run the service's
async context manager until a signal arrives, then leave it (graceful stop) and exit 0.
Exit 2 on a configuration error, 1 when the port is taken. Once the service is up, the objects
start-up made are frozen out of the garbage collector's reach (:func:`freeze_startup_heap`), and
a service that allocates heavily may set the collector's thresholds (``gc_thresholds``).
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from tradekit.config import ConfigError, Setting, parse_command_line, settings_table
from tradekit.grpc_server import PortInUseError, wait_for_shutdown_signal
from tradekit.logs import configure_logging, event_logger


class StartupError(RuntimeError):
    """Something the service needs at start cannot be used (a database it cannot reach...);
    the message says what and what to check. The entry point prints it as one line."""


def redacted_url(url: str) -> str:
    """``url`` without the password of its user part (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class _Configured(Protocol):
    @property
    def log_level(self) -> str: ...


C = TypeVar("C", bound=_Configured)


#: The collector's thresholds (``gc.set_threshold``): young collections, then each older one.
Thresholds = tuple[int, int, int]


def freeze_startup_heap(gc_thresholds: Thresholds | None = None) -> None:
    """Move every object alive now (modules, configuration, pools, servers: what start-up made)
    to the collector's permanent generation, after collecting start-up's garbage; then set
    ``gc_thresholds`` when given.

    A full collection walks every tracked object; a service under load runs one every second
    or so (objects of requests in flight get promoted), and over the start-up heap each paused
    the whole process 30-60 ms (the VWAP service under the query benchmark; 1-11 ms once frozen).
    """
    gc.collect()
    gc.freeze()
    if gc_thresholds is not None:
        gc.set_threshold(*gc_thresholds)


async def serve_until_signal(
    running: AbstractAsyncContextManager[object], *, gc_thresholds: Thresholds | None = None
) -> None:
    """Enter ``running``, freeze the start-up heap (and set ``gc_thresholds``), wait for SIGTERM
    or SIGINT, then leave it."""
    async with asyncio.TaskGroup() as tasks:
        shutdown = tasks.create_task(wait_for_shutdown_signal(), name="shutdown-signal")
        await asyncio.sleep(0)  # the handlers are installed before the server starts
        async with running:
            freeze_startup_heap(gc_thresholds)
            await shutdown


def run_service_main(
    *,
    prog: str,
    description: str,
    settings: Sequence[Setting],
    load_config: Callable[[Mapping[str, str]], C],
    run: Callable[[C], AbstractAsyncContextManager[object]],
    argv: Sequence[str] | None = None,
    gc_thresholds: Thresholds | None = None,
) -> int:
    """The body of every service's ``main``; returns the exit status."""
    args = parse_command_line(prog, description, settings, argv)
    if args.settings_table:
        print(settings_table(settings))
        return 0
    try:
        config = load_config(os.environ)
    except ConfigError as exc:
        print(f"{prog}: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level)
    try:
        asyncio.run(serve_until_signal(run(config), gc_thresholds=gc_thresholds))
    except (PortInUseError, StartupError) as exc:
        return _cannot_start(prog, exc)
    except BaseExceptionGroup as group:
        expected, rest = group.split((PortInUseError, StartupError))
        if expected is None or rest is not None:
            raise
        first = expected.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        return _cannot_start(prog, first)
    return 0


def _cannot_start(prog: str, exc: BaseException) -> int:
    event = "cannot_listen" if isinstance(exc, PortInUseError) else "cannot_start"
    event_logger(prog).error(event, error=str(exc))
    return 1
