"""Which ledger backend a configuration names, opened: the one place both are known.

``[ledger] path`` is a SQLite file for one host (with its one-daemon lock); ``[ledger] url``
a PostgreSQL database shared by a fleet of daemons, each folder owned by lease.
"""

from __future__ import annotations

import structlog

from jetwatch import logs
from jetwatch.config.settings import LedgerSettings
from jetwatch.domain.fleet import Member
from jetwatch.domain.store import LedgerStore
from jetwatch.errors import ExitCode, LedgerError, LedgerUnavailableError
from jetwatch.ledger.lock import LedgerLock
from jetwatch.ledger.postgres.urls import safe_url
from jetwatch.ledger.sqlite import SqliteLedger

log = structlog.get_logger(__name__)


def ledger_name(settings: LedgerSettings) -> str:
    """The ledger as logs and messages name it (a URL never with its password)."""
    return safe_url(settings.url) if settings.shared else str(settings.path)


def _password(settings: LedgerSettings) -> str | None:
    return settings.password.get_secret_value() if settings.password is not None else None


async def open_ledger(settings: LedgerSettings, member: Member | None = None) -> LedgerStore:
    """Open (create, migrate) the configured ledger for a daemon or a mending command."""
    if settings.shared:
        from jetwatch.ledger.postgres.ledger import PostgresLedger  # psycopg: only when used

        return await PostgresLedger.open(settings.url, _password(settings), member=member)
    return await SqliteLedger.open(settings.path, member)


async def open_reader(settings: LedgerSettings) -> LedgerStore:
    """Open the configured ledger to read it (status), daemon running or not."""
    if settings.shared:
        from jetwatch.ledger.postgres.ledger import PostgresLedger  # psycopg: only when used

        return await PostgresLedger.open(settings.url, _password(settings), readonly=True)
    if not settings.path.exists():
        raise LedgerError(f"no ledger at {settings.path} yet: the daemon has not run")
    return await SqliteLedger.open_readonly(settings.path)


def host_lock(settings: LedgerSettings) -> LedgerLock | None:
    """The one-daemon-per-ledger lock of a SQLite ledger; a shared ledger uses leases."""
    return None if settings.shared else LedgerLock(settings.path)


async def open_for_daemon(
    settings: LedgerSettings,
) -> tuple[LedgerStore, LedgerLock | None] | ExitCode:
    """The daemon's ledger and its host lock, or the exit code after one clear log line."""
    path = ledger_name(settings)
    if settings.password is not None:
        logs.register_secret(settings.password.get_secret_value())
    try:
        ledger = await open_ledger(settings)
    except LedgerUnavailableError as exc:
        # Disk full, read-only, server unreachable: not the ledger's content; a restart
        # may do (systemd restarts on exit 1).
        log.error("ledger_unavailable", path=path, error=str(exc))
        return ExitCode.FAILURE
    except LedgerError as exc:
        hint = "see README 'Ledger': jetwatch ledger move-aside"
        log.error("ledger_refused", path=path, error=str(exc), hint=hint)
        return ExitCode.LEDGER
    # Locked after the checks so a refused ledger's folder stays untouched; SQLite's own
    # locking already guards a concurrent open. Two daemons would post the same batches.
    # A shared ledger needs no lock: each folder has a lease instead.
    lock = host_lock(settings)
    try:
        if lock is not None:
            lock.acquire()
    except LedgerError as exc:
        await ledger.aclose()
        log.error("ledger_in_use", error=str(exc))
        return ExitCode.LEDGER
    return ledger, lock
