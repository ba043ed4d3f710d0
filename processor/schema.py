"""Versioned, idempotent migrations owned by the processor, and the storage mode they select.

Migration files live in ``processor/migrations`` as ``NNNN_name.sql`` (both modes) or
``NNNN_name.<mode>.sql`` (one mode). All pending migrations run in one transaction under an
advisory lock, so concurrent starts and crashes mid-migration are safe. The mode is chosen once,
on the first migration, and recorded:

- ``timescale``: TimescaleDB with continuous aggregates (Timescale License) is available.
- ``plain``: anything else (plain PostgreSQL, Apache-only TimescaleDB); triggers keep the same
  aggregate relations exact.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from processor.db import Connection
from tradekit.logs import event_logger

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: TimescaleDB mode: the smallest ``end_offset`` of the aggregate refresh policies (the
#: 10-second level's, migration 0003). A bucket ending later than this before now has not been
#: materialised by a policy; an older one may have been, and a trade stored in it afterwards
#: is not in its aggregate until the next refresh.
MATERIALISED_LAG_MS = 10_000
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)(?:\.(plain|timescale))?\.sql$")
_LOCK_KEY = 7_311_2024

log = event_logger("processor.schema")


class StorageMode(enum.Enum):
    """How aggregates are kept."""

    TIMESCALE = "timescale"
    PLAIN = "plain"


class MigrationError(RuntimeError):
    """The database cannot be brought to the expected schema."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file for one mode."""

    version: int
    name: str
    sql: str


def migrations_for(mode: StorageMode, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations that apply to ``mode``, in version order; one per version."""
    chosen: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            raise MigrationError(f"migration file name not understood: {path.name}")
        version, name, only = int(match.group(1)), match.group(2), match.group(3)
        if only is not None and only != mode.value:
            continue
        if version in chosen:
            raise MigrationError(f"two migrations for version {version} in mode {mode.value}")
        chosen[version] = Migration(version, name, path.read_text())
    versions = sorted(chosen)
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"migration versions must be 1..N without holes, got {versions}")
    return [chosen[v] for v in versions]


async def _detect_mode(conn: Connection, requested: str) -> StorageMode:
    if requested == "plain":
        return StorageMode.PLAIN
    cur = await conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    available = await cur.fetchone() is not None
    licensed = False
    if available:
        try:
            async with conn.transaction():
                await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
                cur = await conn.execute("SELECT current_setting('timescaledb.license', true)")
                row = await cur.fetchone()
                licensed = row is not None and row[0] == "timescale"
        except psycopg.errors.Error as exc:
            log.warning("timescaledb_unusable", error=str(exc).strip())
            licensed = False
    if requested == "timescale" and not licensed:
        raise MigrationError(
            "STORAGE_MODE=timescale but TimescaleDB with continuous aggregates (Timescale "
            "License) is not available in this database; use STORAGE_MODE=auto or plain"
        )
    return StorageMode.TIMESCALE if licensed else StorageMode.PLAIN


async def migrate(
    conninfo: str, requested: str = "auto", *, directory: Path = MIGRATIONS_DIR
) -> StorageMode:
    """Apply pending migrations to the database at ``conninfo``; return the storage mode.

    ``requested`` is ``auto``, ``timescale`` or ``plain``. Idempotent. ``directory`` holds the
    migration files (tests use an older subset to check upgrades).
    """
    if requested not in ("auto", "timescale", "plain"):
        raise MigrationError(f"STORAGE_MODE must be auto, timescale or plain, got {requested!r}")
    async with await psycopg.AsyncConnection.connect(conninfo) as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, mode text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur = await conn.execute("SELECT version, mode FROM schema_migrations")
        applied = {int(v): str(m) for v, m in await cur.fetchall()}
        if applied:
            mode = StorageMode(next(iter(applied.values())))
            if requested not in ("auto", mode.value):
                raise MigrationError(
                    f"database was created in {mode.value} mode; STORAGE_MODE={requested}"
                    " cannot change it"
                )
        else:
            mode = await _detect_mode(conn, requested)
        for migration in migrations_for(mode, directory):
            if migration.version in applied:
                continue
            await conn.execute(migration.sql.encode())
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, mode) VALUES (%s, %s, %s)",
                (migration.version, migration.name, mode.value),
            )
            log.info(
                "migration_applied", version=migration.version, name=migration.name, mode=mode.value
            )
    return mode
