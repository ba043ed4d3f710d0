"""Run a service as its own process (``python -m <package>``) and learn its address.

Every service logs ``event=serving service=<name> address=<host:port>`` when it is ready (the
simulator logs ``event=listening ... port=<port>``); :class:`ServiceProcess` waits for that line,
keeps the rest of the log in a file, and stops the process with SIGTERM.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

_READY = re.compile(r"event=(?:serving|listening)\b.*?(?:address=(\S+)|port=(\d+))")


class ServiceStartError(RuntimeError):
    """The service exited or never reported it was ready."""


class ServiceProcess:
    """``python -m module`` with ``env``; a context manager that stops it with SIGTERM."""

    def __init__(
        self,
        module: str,
        *,
        env: Mapping[str, str],
        log_path: Path,
        startup_timeout: float = 30.0,
    ) -> None:
        self.module = module
        self._env = {**os.environ, **env}
        self.log_path = log_path
        self._startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self.address = ""
        self._ready = threading.Event()
        self._pump: threading.Thread | None = None

    @property
    def pid(self) -> int:
        """Process id of the running service."""
        assert self._proc is not None
        return self._proc.pid

    def start(self) -> ServiceProcess:
        """Start the process and wait until it reports its address."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env=self._env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._pump = threading.Thread(target=self._copy_log, daemon=True)
        self._pump.start()
        deadline = time.monotonic() + self._startup_timeout
        while not self._ready.wait(0.05):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ServiceStartError(
                    f"{self.module} did not start (exit={self._proc.returncode}); log tail:\n"
                    + self.log_tail()
                )
        return self

    def _copy_log(self) -> None:
        assert self._proc is not None
        assert self._proc.stderr is not None
        with self.log_path.open("ab") as log:
            for line in self._proc.stderr:
                log.write(line)
                log.flush()
                if not self._ready.is_set():
                    match = _READY.search(line.decode(errors="replace"))
                    if match:
                        self.address = match.group(1) or f"127.0.0.1:{match.group(2)}"
                        self._ready.set()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the service logged."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the process."""
        assert self._proc is not None
        self._proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit; its exit code."""
        assert self._proc is not None
        code = self._proc.wait(timeout)
        if self._pump is not None:
            self._pump.join(timeout=5)
        return code

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait, SIGKILL after ``timeout``; the exit code. Idempotent."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._pump is not None:
            self._pump.join(timeout=5)
        return self._proc.returncode

    def kill(self) -> None:
        """SIGKILL at once (crash tests)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
