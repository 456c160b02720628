"""SQLite plumbing of the ledger: opening and checking, migrating, transactions, errors."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import structlog

from jetwatch.domain.states import InvalidTransitionError
from jetwatch.errors import LedgerCorruptError, LedgerError, LedgerUnavailableError
from jetwatch.ledger.aside import ledger_files
from jetwatch.ledger.migrations import MIGRATIONS, SCHEMA_VERSION, TABLES
from jetwatch.metrics import LEDGER_ERRORS

log = structlog.get_logger(__name__)

T = TypeVar("T")

# "JWLG": marks the file as a jetwatch ledger so another app's database is never adopted.
APPLICATION_ID = 0x4A574C47
SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 10_000
WAL_LIMIT_BYTES = 64 * 1024 * 1024
# The WAL is checkpointed when it holds this many pages (SQLite's default is the most), or
# a quarter of the volume's free space when that is less: on a small volume a WAL that
# waits for 1000 pages fills the disk before its first checkpoint, and then never gets one.
WAL_MAX_PAGES = 1000
WAL_MIN_PAGES = 16

_UNAVAILABLE = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_NOLFS,
        sqlite3.SQLITE_AUTH,
    }
)
_CORRUPT = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_FORMAT})


def translate(exc: sqlite3.Error, path: Path) -> Exception:
    """The jetwatch error for a sqlite3 error, decided by its result code, never its text."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # extended codes keep the primary low byte
    if code in _UNAVAILABLE:
        return LedgerUnavailableError(f"ledger {path} cannot be used right now: {exc}")
    if code in _CORRUPT:
        return LedgerCorruptError(
            f"ledger {path} is damaged or not a database ({exc}); it was left untouched - "
            "stop jetwatch and run `jetwatch ledger move-aside` to start a new one"
        )
    if isinstance(exc, sqlite3.IntegrityError):
        return InvalidTransitionError(f"ledger constraint violated: {exc}")
    if isinstance(exc, sqlite3.ProgrammingError | sqlite3.InterfaceError):
        return LedgerError(f"ledger {path} misused (closed?): {exc}")
    if type(exc) is sqlite3.DatabaseError:
        return LedgerCorruptError(f"ledger {path} is not usable as a database: {exc}")
    return LedgerError(f"ledger {path} failed: {exc}")


def check_header(path: Path) -> None:
    """Refuse a non-empty file that is not SQLite before SQLite may treat it as empty."""
    try:
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise LedgerUnavailableError(f"cannot read ledger {path}: {exc}") from exc
    # SQLite treats a file shorter than one page as an empty database and would overwrite it.
    if head and head != SQLITE_MAGIC:
        raise LedgerCorruptError(
            f"{path} is not a SQLite database (bad header); it was left untouched - "
            "check the ledger path, or run `jetwatch ledger move-aside`"
        )


class Db:
    """One SQLite connection with its own worker thread and one-transaction-per-call helpers.

    The event loop never touches the connection: :meth:`call` runs a function in the
    connection's thread. ``lock`` guards the connection for the few callers outside it
    (opening, migrating, the one-shot commands' synchronous reads).
    """

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.lock = threading.Lock()
        self._worker: ThreadPoolExecutor | None = None
        self._full = False  # a write found the disk full: checkpoint before the next one
        self._synced = True  # PRAGMA synchronous is FULL (see write)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in this connection's thread, with the caller's log context."""
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")
        job = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._worker, job)

    def stop_worker(self) -> None:
        """Let the worker thread end once its queue is done (after the last ``call``)."""
        if self._worker is not None:
            self._worker.shutdown(wait=False)
            self._worker = None

    @classmethod
    def connect(cls, path: Path, *, read_only: bool) -> Db:
        """Open and validate; unless read-only, also switch to WAL and migrate.

        An existing file is first checked through a read-only connection: closing that never
        checkpoints, so a file we refuse keeps its exact bytes (and its -wal) for inspection.
        """
        check_header(path)
        if read_only or path.exists():
            probe = cls._connect(path, read_only=True)
            try:
                version = probe._validate(quick_check=not read_only)
            except BaseException:
                probe.conn.close()
                raise
            if read_only:
                probe._require_current(version)
                return probe
            probe.conn.close()
        db = cls._connect(path, read_only=False)
        try:
            db._configure()
        except BaseException:
            db.conn.close()
            raise
        return db

    def reader(self) -> Db:
        """A second connection to the same ledger, for long reads only (``query_only``).

        Under WAL a read on its own connection sees one snapshot and holds neither the
        write lock nor ``self.lock``: a bulk read in a worker thread (a million rows at
        start-up) no longer makes every ledger call of the event loop wait for it.
        """
        other = self._connect(self.path, read_only=False)
        try:
            other.conn.execute("PRAGMA query_only = 1")
        except sqlite3.Error as exc:
            other.conn.close()
            raise translate(exc, self.path) from exc
        return other

    @classmethod
    def _connect(cls, path: Path, *, read_only: bool) -> Db:
        target = str(path)
        if read_only:
            target = "file:" + urllib.parse.quote(str(path.absolute())) + "?mode=ro"
            if not ledger_files(path)[1].exists():
                # No -wal: nobody is writing and the file is complete. Without immutable, a
                # reader would create -wal/-shm owned by whoever runs `status` (often root),
                # which the daemon's user could then not open.
                target += "&immutable=1"
        try:
            conn = sqlite3.connect(
                target,
                uri=read_only,
                isolation_level=None,
                check_same_thread=False,  # guarded by Db.lock; big scans call from a thread
                timeout=BUSY_TIMEOUT_MS / 1000,
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:
            raise translate(exc, path) from exc
        return cls(conn, path)

    def _require_current(self, version: int) -> None:
        if version != SCHEMA_VERSION:
            self.conn.close()
            raise LedgerError(
                f"ledger {self.path} has schema version {version}, this jetwatch reads "
                f"{SCHEMA_VERSION}; start the daemon once to create or upgrade it"
            )

    def _configure(self) -> None:
        try:
            self._validate(quick_check=False)  # it may have been created since the probe
            self.conn.execute("PRAGMA foreign_keys = ON")
            mode = self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise LedgerUnavailableError(f"ledger {self.path} cannot use WAL (got {mode})")
            self.conn.execute("PRAGMA synchronous = FULL")
            self._size_wal()
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc
        self._migrate()

    def _size_wal(self) -> None:
        """Checkpoint at a WAL size the volume can hold, and shrink the file back to it."""
        page_size = int(self.conn.execute("PRAGMA page_size").fetchone()[0])
        try:
            free = os.statvfs(self.path.parent)
            free_bytes = free.f_bavail * free.f_frsize
        except OSError:
            free_bytes = WAL_LIMIT_BYTES * 4
        pages = max(WAL_MIN_PAGES, min(WAL_MAX_PAGES, free_bytes // 4 // page_size))
        self.conn.execute(f"PRAGMA wal_autocheckpoint = {pages}")
        # After a checkpoint the WAL file is cut back to this (it otherwise keeps its peak).
        limit = min(WAL_LIMIT_BYTES, pages * page_size)
        self.conn.execute(f"PRAGMA journal_size_limit = {limit}")

    def _recover_space(self) -> None:
        """After SQLITE_FULL: move the WAL into the database and truncate it, so the space it
        held is free again before anything else is written (else the next writes append to
        a WAL that can never be reset, into whatever space was freed, until full again)."""
        try:
            busy = int(self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0])
            self._size_wal()
        except sqlite3.Error as exc:
            log.debug("ledger_checkpoint_failed", path=str(self.path), error=str(exc))
            return
        if not busy:
            self._full = False
            log.info("ledger_space_recovered", path=str(self.path), bytes=self.size_bytes())

    def _validate(self, *, quick_check: bool) -> int:
        """Schema version of a jetwatch ledger; LedgerCorruptError for anything else."""
        try:
            return self._check(quick_check=quick_check)
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc

    def _check(self, *, quick_check: bool) -> int:
        version = int(self.conn.execute("PRAGMA user_version").fetchone()[0])
        app_id = int(self.conn.execute("PRAGMA application_id").fetchone()[0])
        tables = {
            str(row[0])
            for row in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        ours = app_id == APPLICATION_ID and tables <= TABLES
        empty = app_id == 0 and version == 0 and not tables  # new, or a 0-byte file
        if not (ours or empty):
            raise LedgerCorruptError(
                f"{self.path} is a SQLite database but not a jetwatch ledger "
                f"(tables: {', '.join(sorted(tables)) or 'none'}); it was left untouched - "
                "point ledger_path at a new file"
            )
        if version > SCHEMA_VERSION:
            raise LedgerCorruptError(
                f"ledger {self.path} has schema version {version}, newer than this jetwatch "
                f"knows ({SCHEMA_VERSION}); upgrade jetwatch, it was left untouched"
            )
        if quick_check:
            problems = [str(row[0]) for row in self.conn.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise LedgerCorruptError(
                    f"ledger {self.path} failed its integrity check ({'; '.join(problems[:5])}); "
                    "it was left untouched - run `jetwatch ledger move-aside` to start anew"
                )
        return version

    def _migrate(self) -> None:
        with self.write() as conn:
            # Re-read inside the write lock: another process may have migrated meanwhile.
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            for step in MIGRATIONS[version:]:
                for statement in step:
                    conn.execute(statement)
            if version < SCHEMA_VERSION:
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                log.info(
                    "ledger_migrated",
                    path=str(self.path),
                    from_version=version,
                    version=SCHEMA_VERSION,
                )

    @contextmanager
    def write(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction, committed on exit and rolled back on any error.
        ``durable=False``: the WAL is not synced at commit (a power cut may undo it, a killed
        daemon never; the next durable commit syncs it too). Only for records whose loss
        repeats work (a file settled, a batch formed); what precedes a POST is durable."""
        with self.lock:
            if self._full:
                self._recover_space()
            try:
                if self._synced != durable:
                    self.conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
                    self._synced = durable
                self.conn.execute("BEGIN IMMEDIATE")
                yield self.conn
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                error = translate(exc, self.path)
                if isinstance(error, LedgerUnavailableError):
                    LEDGER_ERRORS.inc()
                if getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL:
                    self._full = True
                raise error from exc
            except BaseException:
                self._rollback()
                raise

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction, so multi-query reads see one consistent state."""
        with self.lock:
            try:
                self.conn.execute("BEGIN")
                yield self.conn
            except sqlite3.Error as exc:
                self._rollback()
                raise translate(exc, self.path) from exc
            except BaseException:
                self._rollback()
                raise
            self._end_read()

    def _end_read(self) -> None:
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise translate(exc, self.path) from exc

    def _rollback(self) -> None:
        # SQLite rolls back by itself after FULL/IOERR/BUSY; a second ROLLBACK would fail.
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        except sqlite3.Error as exc:  # closed, or the disk went away: the error says enough
            log.warning("ledger_rollback_failed", path=str(self.path), error=str(exc))

    def close(self) -> None:
        with self.lock:
            try:
                self.conn.close()
            except sqlite3.Error as exc:
                raise translate(exc, self.path) from exc

    def size_bytes(self) -> int:
        total = 0
        for part in ledger_files(self.path)[:2]:
            try:
                total += part.stat().st_size
            except FileNotFoundError:
                continue
        return total


def check_ledger(path: Path) -> None:
    """Raise what opening the ledger for the daemon would refuse (a foreign or damaged
    file, a newer schema, a failed integrity check), through a read-only connection."""
    check_header(path)
    probe = Db._connect(path, read_only=True)
    try:
        probe._validate(quick_check=True)
    finally:
        probe.conn.close()
