"""Moving a damaged ledger out of the way: renamed with its WAL files, never deleted."""

from __future__ import annotations

import os
import time
from pathlib import Path

import structlog

from jetwatch.errors import LedgerError, LedgerUnavailableError

log = structlog.get_logger(__name__)


def move_aside(path: Path, now: float) -> Path:
    """Rename the ledger and its WAL files to ``<name>.corrupt-<UTC time>``; never deletes."""
    if not path.exists():
        raise LedgerError(f"no ledger at {path} to move aside")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    base = path.with_name(f"{path.name}.corrupt-{stamp}")
    serial = 1
    while any(p.exists() for p in ledger_files(base)):
        serial += 1
        base = path.with_name(f"{path.name}.corrupt-{stamp}-{serial}")
    # WAL first: a stale -wal left beside a new ledger at `path` could be replayed into it.
    sources, targets = ledger_files(path), ledger_files(base)
    try:
        for source, target in zip(sources[::-1], targets[::-1], strict=True):
            if source.exists():
                os.rename(source, target)
    except OSError as exc:
        raise LedgerUnavailableError(f"cannot move ledger {path} aside: {exc}") from exc
    log.warning("ledger_moved_aside", path=str(path), moved_to=str(base))
    return base


def ledger_files(path: Path) -> tuple[Path, Path, Path]:
    """The database file and the two WAL companions SQLite keeps beside it."""
    return path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")
