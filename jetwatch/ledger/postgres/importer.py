"""Moving a SQLite ledger's memory into an empty PostgreSQL ledger (``jetwatch ledger copy``).

Every row keeps its id, state and times, so the daemons on the new ledger know every file
the old one knew: nothing delivered is sent again, batches in flight are followed, in-doubt
ones resolved. One transaction: a copy that fails leaves the target as empty as it was.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from jetwatch.errors import LedgerError
from jetwatch.ledger.db import Db
from jetwatch.ledger.postgres.ledger import PostgresLedger
from jetwatch.ledger.rows import BATCH_COLUMNS, FILE_COLUMNS

log = structlog.get_logger(__name__)

FOLDER_COLUMNS = "name, mode, mode_reason, last_scan_at, files_seen, scan_duration_s"
_ACTION_DONE = FILE_COLUMNS.split(", ").index("action_done")


@dataclass(frozen=True, slots=True)
class CopyReport:
    files: int
    batches: int
    folders: int


def _read_sqlite(path: Path) -> tuple[list[Any], list[Any], list[Any]]:
    """Every batch, file and folder row of the SQLite ledger, by id (blocking)."""
    db = Db.connect(path, read_only=True)
    try:
        with db.read() as conn:
            batches = conn.execute(f"SELECT {BATCH_COLUMNS} FROM batches ORDER BY id").fetchall()  # noqa: S608 - constants only
            files = conn.execute(f"SELECT {FILE_COLUMNS} FROM files ORDER BY id").fetchall()  # noqa: S608 - constants only
            folders = conn.execute(f"SELECT {FOLDER_COLUMNS} FROM folders").fetchall()  # noqa: S608 - constants only
    finally:
        db.close()
    return batches, files, folders


async def copy_sqlite(path: Path, target: PostgresLedger) -> CopyReport:
    """Copy the ledger at ``path`` into ``target``, which must hold no file or batch yet."""
    batches, files, folders = await asyncio.to_thread(_read_sqlite, path)
    files = [(*r[:_ACTION_DONE], bool(r[_ACTION_DONE]), *r[_ACTION_DONE + 1 :]) for r in files]
    async with target._pg.tx() as conn:
        cursor = await conn.execute(
            "SELECT (SELECT count(*) FROM files) + (SELECT count(*) FROM batches)"
        )
        row = await cursor.fetchone()
        if row is not None and row[0]:
            raise LedgerError(
                f"ledger {target.where} already holds files or batches: copy only into a "
                "new, empty ledger"
            )
        for table, columns, rows in (
            ("batches", BATCH_COLUMNS, batches),
            ("files", FILE_COLUMNS, files),
            ("folders", FOLDER_COLUMNS, folders),
        ):
            async with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for item in rows:
                    await copy.write_row(item)
        for table in ("batches", "files"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 - constants only
                f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
            )
        # The copy fired the count triggers already; recount to be sure they agree.
        await conn.execute("DELETE FROM file_counts")
        await conn.execute(
            "INSERT INTO file_counts (folder, state, files) "
            "SELECT folder, state, count(*) FROM files GROUP BY folder, state"
        )
    report = CopyReport(len(files), len(batches), len(folders))
    log.info("ledger_copied", source=str(path), target=target.where, files=report.files,
             batches=report.batches)  # fmt: skip
    return report
