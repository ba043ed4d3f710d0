"""A launcher killed hard (SIGKILL, out of memory) leaves nothing running: the embedded servers
it started with ``die_with_parent`` and the services it runs through ``devstack.detached`` stop
by themselves (they kept the data directory locked and the ports taken)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie no parent reaped yet counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in {"Z", "X"}


def _launch(script: str) -> tuple[subprocess.Popen[str], int]:
    """Run ``script`` in a new Python process; it prints the pid of the child it started."""
    launcher = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert launcher.stdout is not None
    line = launcher.stdout.readline()
    assert line.strip().isdigit(), f"the launcher printed {line!r}"
    return launcher, int(line)


def _kill_and_wait(launcher: subprocess.Popen[str], child: int) -> bool:
    assert not _gone(child)
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    deadline = time.monotonic() + 20
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    gone = _gone(child)
    if not gone:
        os.kill(child, signal.SIGKILL)
    return gone


def test_a_detached_service_stops_itself_as_on_sigterm_when_its_launcher_dies(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "stopped"
    script = f"""
        import os, subprocess, sys, time
        env = dict(os.environ, DEVSTACK_MODULE="tests.stack.sleeper")
        env["SLEEPER_MARKER"] = {str(marker)!r}
        child = subprocess.Popen([sys.executable, "-m", "devstack.detached"], env=env)
        print(child.pid, flush=True)
        time.sleep(600)
    """
    launcher, child = _launch(script)
    deadline = time.monotonic() + 20
    while not (tmp_path / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _kill_and_wait(launcher, child)
    assert marker.read_text() == "SIGTERM"


def test_an_embedded_server_started_to_die_with_its_parent_does(tmp_path: Path) -> None:
    script = f"""
        import time
        from devstack.nats import EmbeddedNats
        server = EmbeddedNats({str(tmp_path / "js")!r}, die_with_parent=True).start()
        print(server.pid, flush=True)
        time.sleep(600)
    """
    launcher, child = _launch(script)
    assert _kill_and_wait(launcher, child)
