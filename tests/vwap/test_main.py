"""``python -m vwap``: help, startup, and a graceful exit 0 on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from devstack.ports import free_port


def test_help_lists_the_settings() -> None:
    """--help prints every environment variable."""
    out = subprocess.run(
        [sys.executable, "-m", "vwap", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in ("VWAP_PORT", "DATABASE_URL", "PROCESSOR_ADDRESS", "VWAP_CACHE_MIN_AGE"):
        assert name in out


def test_sigterm_stops_gracefully_with_exit_zero(store_url: str) -> None:
    """The service starts serving and exits 0 on SIGTERM."""
    env = {
        **os.environ,
        "DATABASE_URL": store_url,
        "VWAP_PORT": "0",
        "PROCESSOR_ADDRESS": f"127.0.0.1:{free_port()}",
        "VWAP_GRACE": "100ms",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "vwap"], env=env, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    lines = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if "event=serving" in line:
            break
    else:
        proc.kill()
        raise AssertionError("".join(lines))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    proc.stderr.close()
