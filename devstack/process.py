"""Child-process plumbing shared by the embedded servers: errors, log tails, stopping."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Protocol, Self

LOG_TAIL_LINES = 40


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be set up, started or stopped; the message has its log tail."""


def log_tail(path: Path, since: int = 0, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last ``lines`` lines written to ``path`` after byte offset ``since``."""
    try:
        with path.open("rb") as log:
            log.seek(since)
            text = log.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"<log {path} unreadable: {exc}>"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "<log is empty>"


def log_size(path: Path) -> int:
    """Return the current size of ``path`` in bytes (0 if it does not exist yet)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


_PR_SET_PDEATHSIG = 1


def parent_death_signal(sig: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn`` making the child get ``sig`` when the process starting it dies (even by
    SIGKILL, which leaves no chance to stop it), so a launcher killed hard leaves no server
    holding its data directory and ports. Linux only (None elsewhere). The kernel ties it to
    the starting thread: start such children from a thread that lives as long as they do."""
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return preexec


def stop_process(process: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> None:
    """Send ``sig`` to ``process`` and wait ``timeout`` seconds; then SIGKILL its process group.

    The process must have been started with ``start_new_session=True`` so that killing its
    group also takes down children it forked (PostgreSQL backends, for instance).
    """
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        try:
            process.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


class _Stoppable(Protocol):
    def stop(self) -> None: ...


_running: set[_Stoppable] = set()
_running_lock = threading.Lock()


def track(server: _Stoppable) -> None:
    """Remember a started server so it is stopped at interpreter exit if nobody else does."""
    with _running_lock:
        _running.add(server)


def untrack(server: _Stoppable) -> None:
    """Forget a server that has been stopped."""
    with _running_lock:
        _running.discard(server)


@atexit.register
def _stop_leftovers() -> None:
    with _running_lock:
        leftovers = list(_running)
    for server in leftovers:
        with contextlib.suppress(Exception):
            server.stop()


class EmbeddedServer:
    """What the embedded servers share: the child process, its port, the context manager.

    Subclasses set ``_process`` and ``_port`` in ``start()`` and clear them in ``stop()``.
    """

    #: Name used in errors, for example "PostgreSQL".
    label: ClassVar[str] = "server"

    _process: subprocess.Popen[bytes] | None = None
    _port: int | None = None

    def start(self) -> Self:
        """Start the server and wait until it is ready."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the server. Idempotent."""
        raise NotImplementedError

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int:
        """The server's process id."""
        if self._process is None:
            raise EmbeddedServerError(f"{self.label} is not started")
        return self._process.pid

    @property
    def port(self) -> int:
        """The TCP port on 127.0.0.1."""
        if self._port is None:
            raise EmbeddedServerError(f"{self.label} is not started")
        return self._port

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
