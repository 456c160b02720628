"""PostgreSQL plumbing of the ledger: connecting, checking and migrating, transactions, errors.

psycopg 3 with an async connection pool: no call blocks the event loop. Foreign errors are
translated here, by SQLSTATE and class, never by message text: a connection that cannot be
made or is lost is ``LedgerUnavailableError`` (retried; the daemon is not ready meanwhile),
a database that is not a jetwatch ledger, missing, refusing the credentials or of a newer
schema is ``LedgerError`` (refused: one line, exit 3).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import structlog
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from jetwatch.domain.states import InvalidTransitionError
from jetwatch.errors import LedgerCorruptError, LedgerError, LedgerUnavailableError
from jetwatch.ledger.postgres.schema import APPLICATION, MIGRATIONS, SCHEMA_VERSION, TABLES
from jetwatch.ledger.postgres.urls import safe_url
from jetwatch.metrics import LEDGER_ERRORS

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT_S = 5
MIGRATE_ATTEMPTS = 3
CHECKOUT_TIMEOUT_S = 10.0
# SQLSTATE classes that mean "the ledger is refused", not "try again".
_REFUSED = {
    "3D000": "the database does not exist",
    "28P01": "the password was refused",
    "28000": "the server refused the user",
    "42501": "the user may not use this database",
}
Conn = psycopg.AsyncConnection[Any]


def translate(exc: Exception, where: str) -> Exception:
    """The jetwatch error for a psycopg (or pool) error."""
    if isinstance(exc, PoolTimeout | TimeoutError):
        return LedgerUnavailableError(f"ledger {where} cannot be reached: {_first_line(exc)}")
    state = getattr(exc, "sqlstate", None) or ""
    if state in _REFUSED:
        return LedgerError(f"ledger {where}: {_REFUSED[state]} ({_first_line(exc)})")
    if isinstance(exc, pg_errors.IntegrityError):
        return InvalidTransitionError(f"ledger constraint violated: {_first_line(exc)}")
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        # Connection lost or refused, server shutting down, deadlock, serialization: retry.
        return LedgerUnavailableError(
            f"ledger {where} cannot be used right now: {_first_line(exc)}"
        )
    return LedgerError(f"ledger {where} failed: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


class Pg:
    """A connection pool to the ledger's database; :meth:`tx` is one transaction."""

    def __init__(self, pool: AsyncConnectionPool[Conn], where: str) -> None:
        self.pool = pool
        self.where = where

    @classmethod
    async def open(
        cls, url: str, password: str | None, *, max_size: int, name: str, timeout_s: float
    ) -> Pg:
        """A pool whose first connection was made: refuses what cannot be a ledger."""
        where = safe_url(url)
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": CONNECT_TIMEOUT_S,
            "application_name": f"jetwatch-{name}",
            # No server-side prepared statements: safe behind PgBouncer in transaction mode.
            "prepare_threshold": None,
        }
        if password is not None:
            kwargs["password"] = password
        await _probe(url, kwargs, where)
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url,
            kwargs=kwargs,
            min_size=1,
            max_size=max_size,
            open=False,
            timeout=timeout_s,
            check=AsyncConnectionPool.check_connection,
            reconnect_timeout=3600.0,
            name=name,
        )
        try:
            await pool.open(wait=True, timeout=CHECKOUT_TIMEOUT_S)
        except (PoolTimeout, psycopg.Error) as exc:
            await pool.close()
            raise translate(exc, where) from exc
        return cls(pool, where)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def tx(self, *, durable: bool = True) -> AsyncIterator[Conn]:
        """One transaction, committed on exit, rolled back on any error; errors translated.

        ``durable=False`` commits without waiting for the WAL flush (synchronous_commit
        off): a server crash may undo it, never half of it, and later commits stay in order.
        As with the SQLite ledger, only for records whose loss repeats work.
        """
        try:
            async with self.pool.connection() as conn, conn.transaction():
                if not durable:
                    await conn.execute("SET LOCAL synchronous_commit = off")
                yield conn
        except (psycopg.Error, PoolTimeout) as exc:
            error = translate(exc, self.where)
            if isinstance(error, LedgerUnavailableError):
                LEDGER_ERRORS.inc()
            raise error from exc

    async def migrate(self) -> int:
        """Create or upgrade the schema; the version it had. Refuses foreign or newer ones.

        Two daemons starting on an empty database: both create ``jetwatch_meta``; the one
        that loses that race gets a unique violation once the other committed, and tries
        again. Whoever holds ``jetwatch_meta`` locked migrates; the other waits for its
        commit and then finds the schema current. No advisory lock of any kind.
        """
        for attempt in range(MIGRATE_ATTEMPTS):
            try:
                return await self._migrate_once()
            except InvalidTransitionError:
                if attempt == MIGRATE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _migrate_once(self) -> int:
        async with self.tx() as conn:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS jetwatch_meta "
                "(key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            await conn.execute("LOCK TABLE jetwatch_meta IN EXCLUSIVE MODE")
            version = await self._check(conn)
            for step in MIGRATIONS[version:]:
                for statement in step:
                    await conn.execute(statement)  # constants only
            if version < SCHEMA_VERSION:
                await conn.execute(
                    "INSERT INTO jetwatch_meta (key, value) VALUES ('application', %s), "
                    "('schema_version', %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (APPLICATION, str(SCHEMA_VERSION)),
                )
                log.info("ledger_migrated", url=self.where, from_version=version,
                         version=SCHEMA_VERSION)  # fmt: skip
        return version

    async def check_current(self) -> None:
        """For readers: the schema must be this jetwatch's (no upgrade from a reader)."""
        async with self.tx() as conn:
            exists = await (await conn.execute("SELECT to_regclass('jetwatch_meta')")).fetchone()
            if exists is None or exists[0] is None:
                raise LedgerError(f"ledger {self.where} is empty: start the daemon once")
            version = await self._check(conn)
        if version != SCHEMA_VERSION:
            raise LedgerError(
                f"ledger {self.where} has schema version {version}, this jetwatch reads "
                f"{SCHEMA_VERSION}; start the daemon once to upgrade it"
            )

    async def _check(self, conn: Conn) -> int:
        rows = await (await conn.execute("SELECT key, value FROM jetwatch_meta")).fetchall()
        meta = {str(k): str(v) for k, v in rows}
        cursor = await conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
        tables = {str(r[0]) for r in await cursor.fetchall()}
        ours = meta.get("application") == APPLICATION and tables <= TABLES
        empty = not meta and tables <= {"jetwatch_meta"}
        if not (ours or empty):
            raise LedgerCorruptError(
                f"{self.where} is a database but not a jetwatch ledger (tables: "
                f"{', '.join(sorted(tables - {'jetwatch_meta'})) or 'none'}); it was left "
                "untouched - point [ledger] url at an empty database"
            )
        version = int(meta.get("schema_version", "0"))
        if version > SCHEMA_VERSION:
            raise LedgerCorruptError(
                f"ledger {self.where} has schema version {version}, newer than this jetwatch "
                f"knows ({SCHEMA_VERSION}); upgrade jetwatch, it was left untouched"
            )
        return version


async def _probe(url: str, kwargs: dict[str, Any], where: str) -> None:
    """One connection first: its error says why (a pool would only time out).

    libpq gives a failed connection no SQLSTATE. Whether the server is there decides: one
    that answers and still refuses (credentials, a missing database) is a refused ledger,
    one that cannot be reached is unavailable (retried, a restart may do).
    """
    try:
        conn = await asyncio.wait_for(
            psycopg.AsyncConnection.connect(url, **kwargs), CONNECT_TIMEOUT_S + 1
        )
    except psycopg.ProgrammingError as exc:  # a URL libpq cannot parse
        reason = _first_line(exc)
        raise LedgerError(f"ledger {where}: not a valid PostgreSQL URL ({reason})") from exc
    except (psycopg.Error, TimeoutError) as exc:
        if isinstance(exc, psycopg.OperationalError) and await _server_answers(url):
            raise LedgerError(f"ledger {where} refused: {_server_said(exc)}") from exc
        raise translate(exc, where) from exc
    await conn.close()


async def _server_answers(url: str) -> bool:
    """Something accepts connections where the URL points (a TCP port or a socket file)."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error:
        return False
    host = str(info.get("host") or "/var/run/postgresql").split(",")[0]
    port = int(str(info.get("port") or 5432).split(",")[0])
    try:
        if host.startswith("/"):
            opened = asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
        else:
            opened = asyncio.open_connection(host, port)
        _, writer = await asyncio.wait_for(opened, CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


def _server_said(exc: BaseException) -> str:
    """libpq's reason without its "connection to server ... failed:" preamble."""
    text = _first_line(exc)
    return text.rpartition("failed: ")[2].removeprefix("FATAL:").strip() or text
