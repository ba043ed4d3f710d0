"""CPU time by component of a benchmark, from ``/proc`` (Linux).

A benchmark's system is several processes: the benchmark's own (services run in-process),
their children (the relay worker, the simulator), PostgreSQL's server and backends and
``nats-server``. :func:`cpu_by_component` sums user + system CPU seconds of every process
descending from this one, grouped by what it runs; the difference of two snapshots over a
measured interval says which part of the system the work cost, and whether the machine's cores
were all busy (then the rate is bound by total CPU, not by one process).
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_S = os.sysconf("SC_CLK_TCK")

#: Component names by a word of their processes' command lines; first match wins.
COMPONENTS = (
    ("relay_worker", "relay_worker"),
    ("sim_process", "simulator"),
    ("simulator", "simulator"),
    ("postgres", "postgres"),
    ("nats-server", "nats-server"),
)


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` split after the command name (which may hold spaces)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:  # the process ended meanwhile
        return None
    return text[text.rindex(")") + 2 :].split()


def _children(pids: set[int]) -> dict[int, int]:
    """Every live process whose parent is in the tree, by pid: its parent."""
    parents: dict[int, int] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                parents[int(entry.name)] = int(fields[1])
    tree = set(pids)
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return {pid: parents.get(pid, 0) for pid in tree}


def _component(pid: int, root: int) -> str:
    if pid == root:
        return "benchmark_process"
    try:
        command = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "other"
    return next((name for word, name in COMPONENTS if word in command), "other")


def cpu_by_component(root: int | None = None) -> dict[str, float]:
    """CPU seconds (user + system, the processes' own, children reaped not counted twice) used
    so far by ``root`` (default: this process) and every process below it, by component."""
    root = os.getpid() if root is None else root
    totals: dict[str, float] = {}
    for pid in _children({root}):
        fields = _stat_fields(pid)
        if fields is None:
            continue
        # fields[11], fields[12]: utime, stime (the 14th and 15th fields of stat)
        seconds = (int(fields[11]) + int(fields[12])) / TICKS_PER_S
        name = _component(pid, root)
        totals[name] = totals.get(name, 0.0) + seconds
    return totals


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each component used between two snapshots (processes that started in
    between count from zero; ones that ended are lost, so keep them alive over the interval)."""
    return {
        name: round(after[name] - before.get(name, 0.0), 2)
        for name in sorted(after)
        if after[name] - before.get(name, 0.0) > 0
    }
