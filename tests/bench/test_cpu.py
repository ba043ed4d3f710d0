"""CPU accounting by component: a child process's CPU is found under the name its command
line carries, and only processes below the benchmark count."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

from bench.cpu import cpu_by_component, cpu_used

BURN = (
    "import sys, time\n"
    "start = time.process_time()\n"
    "while time.process_time() - start < float(sys.argv[1]):\n"
    "    pass\n"
    "sys.stdout.write('done\\n'); sys.stdout.flush()\n"
    "sys.stdin.read()\n"
)


@contextlib.contextmanager
def _burning_child(seconds: float) -> Iterator[subprocess.Popen[bytes]]:
    """A child whose command line says ``simulator``, once it has burnt ``seconds`` of CPU; it
    stays alive (idle) until the block ends."""
    child = subprocess.Popen(
        [sys.executable, "-c", BURN, str(seconds), "simulator"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"done\n"
        yield child
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)


def test_a_child_s_cpu_is_counted_under_its_component() -> None:
    before = cpu_by_component()
    with _burning_child(0.3):
        used = cpu_used(before, cpu_by_component())
    assert used["simulator"] >= 0.29
    # Counted under no other component: those show at most their own background work (the
    # session's PostgreSQL, a child of this process, may checkpoint meanwhile).
    assert all(seconds < 0.15 for name, seconds in used.items() if name != "simulator"), used
    assert "benchmark_process" in cpu_by_component()


def test_a_process_outside_the_tree_is_not_counted() -> None:
    """A process started by this one but looked at from another root is not in that tree."""
    with _burning_child(0.2) as child:
        from_child = cpu_by_component(child.pid)
        from_here = cpu_by_component()
    assert set(from_child) == {"benchmark_process"}
    assert from_child["benchmark_process"] >= 0.19
    assert from_here["simulator"] >= 0.19
