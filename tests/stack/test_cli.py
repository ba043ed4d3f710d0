"""The command lines: ``python -m devstack`` helps, runs, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

STOPPED = "stopped (vwap=0 processor=0 proxy=0 simulator=0)"


def test_devstack_help_describes_the_options() -> None:
    """``python -m devstack --help`` exits 0 and documents the profile and data directory."""
    done = subprocess.run(
        [sys.executable, "-m", "devstack", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0
    assert "--profile" in done.stdout
    assert "--data-dir" in done.stdout


def test_accuracy_help_describes_the_options() -> None:
    """``python -m devstack.accuracy --help`` exits 0 and documents duration and output."""
    done = subprocess.run(
        [sys.executable, "-m", "devstack.accuracy", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0
    assert "--duration" in done.stdout
    assert "--out" in done.stdout


def test_ctrl_c_stops_every_service_and_exits_0(tmp_path: Path) -> None:
    """SIGINT to the whole process group (a terminal's Ctrl-C) stops all services, exit 0."""
    env = {
        **os.environ,
        "SIM_PORT": "0",
        "PROXY_PORT": "0",
        "PROCESSOR_PORT": "0",
        "VWAP_PORT": "0",
    }
    env.pop("DATABASE_URL", None)
    env.pop("NATS_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack", "--data-dir", str(tmp_path), "--interval", "0.5"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 60
    for line in process.stdout:
        seen.append(line)
        if "trades_ingested=" in line or time.monotonic() > deadline:
            break
    os.killpg(process.pid, signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    output = "".join(seen) + rest
    assert process.returncode == 0, output
    assert "trades_ingested=" in output
    assert STOPPED in output
    assert "grpcurl -plaintext" in output
