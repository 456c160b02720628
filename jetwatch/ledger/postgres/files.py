"""File-level transitions of the PostgreSQL ledger: what intake records, post-actions finish.

The same state machine as :mod:`jetwatch.ledger.files`, in plain SQL; each public method
is one transaction. Lists travel as arrays (``unnest``), so a 100,000-file intake is one
statement. Post-action writes are fenced by the folders' leases (:func:`fence`).
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from jetwatch.domain.states import FileKey, FileRow, InvalidTransitionError
from jetwatch.domain.store import from_i64, to_i64
from jetwatch.domain.versions import EarlierVersion
from jetwatch.ledger.postgres.conn import Conn, Pg
from jetwatch.ledger.postgres.leases import fence, owned_clause
from jetwatch.ledger.rows import FILE_COLUMNS, file_row, unique_ids

log = structlog.get_logger(__name__)

_KEYS = (
    "SELECT * FROM unnest(%(relpath)s::text[], %(size)s::bigint[], %(mtime)s::bigint[], "
    "%(inode)s::bigint[]) AS k(relpath, size, mtime_ns, inode)"
)


# Rows a burst of new rows supersedes, found by one files_by_key probe per new row: a
# LATERAL subquery fenced by OFFSET 0 is never flattened into a join that would sort the
# whole table (365 ms per 10,000 new rows at 200,000), and "state || ''" never walks
# files_pending by state.
_OLDER_STABLE = (
    "SELECT o.id FROM files AS new CROSS JOIN LATERAL (SELECT id FROM files AS old "
    "WHERE old.folder = new.folder AND old.relpath = new.relpath AND old.id < new.id "
    "AND (old.state || '') = 'STABLE' OFFSET 0) AS o WHERE new.id = ANY(%s)"
)


def _key_arrays(keys: Sequence[FileKey]) -> dict[str, list[object]]:
    return {
        "relpath": [k.relpath for k in keys],
        "size": [k.size for k in keys],
        "mtime": [k.mtime_ns for k in keys],
        "inode": [to_i64(k.inode) for k in keys],
    }


class PgFiles:
    """The files table: intake (settled, gone) and post-actions (done, failed, errors)."""

    def __init__(self, pg: Pg, token: str) -> None:
        self._pg = pg
        self._token = token

    async def known_fingerprints(self, folder: str) -> set[int]:
        """Fingerprints (``key_fingerprint``) of the folder's rows except GONE ones."""
        async with self._pg.tx() as conn:
            cursor = conn.cursor(name="fingerprints")  # server-side: rows stream
            await cursor.execute(
                "SELECT relpath, size, mtime_ns, inode FROM files "
                "WHERE folder = %s AND state <> 'GONE'",
                (folder,),
            )
            found: set[int] = set()
            while rows := await cursor.fetchmany(50_000):
                found.update(hash(tuple(r)) for r in rows)
            await cursor.close()
            return found

    async def is_known(self, folder: str, key: FileKey) -> bool:
        async with self._pg.tx() as conn:
            cursor = await conn.execute(
                "SELECT 1 FROM files WHERE folder = %s AND relpath = %s AND size = %s "
                "AND mtime_ns = %s AND inode = %s",
                (folder, key.relpath, key.size, key.mtime_ns, to_i64(key.inode)),
            )
            return await cursor.fetchone() is not None

    async def add_stable(self, folder: str, keys: Sequence[FileKey], now: float) -> list[int]:
        """Record settled files; known keys are ignored. The ids of new rows, in order.

        A new version of a path makes an older STABLE one GONE; a GONE key that came back
        unchanged is revived to STABLE and its id returned after the new ones.
        """
        if not keys:
            return []
        params = {**_key_arrays(keys), "folder": folder, "now": now}
        async with self._pg.tx(durable=False) as conn:  # lost: the files settle again
            cursor = await conn.execute(
                "INSERT INTO files (folder, relpath, size, mtime_ns, inode, state, stable_at, "  # noqa: S608 - constants only
                f"updated_at) SELECT %(folder)s, k.*, 'STABLE', %(now)s, %(now)s "
                f"FROM ({_KEYS}) AS k "
                "ON CONFLICT DO NOTHING RETURNING id",
                params,
            )
            new_ids = sorted(int(r[0]) for r in await cursor.fetchall())
            if new_ids:
                await conn.execute(
                    "UPDATE files SET state = 'GONE', updated_at = %s, "  # noqa: S608 - constants only
                    "error = 'superseded by a newer version before it was sent' "
                    f"WHERE id IN ({_OLDER_STABLE})",
                    (now, new_ids),
                )
            if len(new_ids) < len(keys):
                new_ids += await _revive_gone(conn, params)
        return new_ids

    async def earlier_versions(self, folder: str, file_ids: Sequence[int]) -> list[EarlierVersion]:
        """For each of the new rows ``file_ids``, the last older version of its path that
        was sent (SUBMITTED, TRANSFERRED or DONE), if any."""
        ids = unique_ids(file_ids)
        if not ids:
            return []
        async with self._pg.tx() as conn:
            cursor = await conn.execute(
                "SELECT new.id, new.relpath, new.size, new.mtime_ns, new.inode, new.stable_at, "
                "old.size, old.mtime_ns, old.inode, old.stable_at FROM files AS new "
                "JOIN files AS old ON old.folder = new.folder AND old.relpath = new.relpath "
                "WHERE new.id = ANY(%s) AND new.folder = %s AND old.id < new.id "
                "AND old.state IN ('SUBMITTED', 'TRANSFERRED', 'DONE') ORDER BY new.id, old.id",
                (ids, folder),
            )
            rows = await cursor.fetchall()
        last: dict[int, EarlierVersion] = {}  # the newest older version wins
        for r in rows:
            new = FileKey(r[1], r[2], r[3], from_i64(r[4]))
            old = FileKey(r[1], r[6], r[7], from_i64(r[8]))
            last[r[0]] = EarlierVersion(new, r[5], old, r[9])
        return list(last.values())

    async def follow_version(self, file_id: int, key: FileKey, now: float) -> bool:
        """A SUBMITTED row's delivery carried the file as ``key`` (Jet followed it while it
        grew): the row takes that key, and a row of ``key`` never sent (STABLE, GONE) goes.

        False (nothing changed) when another row of ``key`` is on its own way.
        """
        async with self._pg.tx() as conn:
            cursor = await conn.execute(
                "SELECT folder, relpath, state FROM files WHERE id = %s FOR UPDATE", (file_id,)
            )
            row = await cursor.fetchone()
            if row is None or row[2] != "SUBMITTED" or row[1] != key.relpath:
                raise InvalidTransitionError(f"follow_version({file_id}): not a SUBMITTED row")
            cursor = await conn.execute(
                "SELECT id, state FROM files WHERE folder = %s AND relpath = %s AND size = %s "
                "AND mtime_ns = %s AND inode = %s FOR UPDATE",
                (row[0], key.relpath, key.size, key.mtime_ns, to_i64(key.inode)),
            )
            other = await cursor.fetchone()
            if other is not None and other[0] != file_id:
                if other[1] not in ("STABLE", "GONE"):
                    return False
                await conn.execute("DELETE FROM files WHERE id = %s", (other[0],))
            await conn.execute(
                "UPDATE files SET size = %s, mtime_ns = %s, inode = %s, updated_at = %s "
                "WHERE id = %s",
                (key.size, key.mtime_ns, to_i64(key.inode), now, file_id),
            )
        return True

    async def mark_gone(self, file_ids: Sequence[int], now: float) -> int:
        """STABLE/BATCHED → GONE; an OPEN or HELD batch left without files becomes FAILED."""
        ids = unique_ids(file_ids)
        if not ids:
            return 0
        async with self._pg.tx() as conn:
            cursor = await conn.execute(
                "UPDATE files SET state = 'GONE', updated_at = %s WHERE id = ANY(%s) "
                "AND state IN ('STABLE', 'BATCHED') RETURNING batch_id",
                (now, ids),
            )
            rows = await cursor.fetchall()
            batch_ids = sorted({int(r[0]) for r in rows if r[0] is not None})
            if batch_ids:
                await conn.execute(
                    "UPDATE batches SET state = 'FAILED', updated_at = %s, "
                    "last_error = 'every file vanished before submission' "
                    "WHERE id = ANY(%s) AND state IN ('OPEN', 'HELD') AND NOT EXISTS "
                    "(SELECT 1 FROM files WHERE batch_id = batches.id AND state = 'BATCHED')",
                    (now, batch_ids),
                )
        return len(rows)

    async def pending_actions(self, limit: int = 500) -> list[FileRow]:
        """TRANSFERRED rows and FAILED rows with their post-action to do, of folders held."""
        async with self._pg.tx() as conn:
            cursor = await conn.execute(
                f"SELECT {FILE_COLUMNS} FROM files WHERE state IN ('TRANSFERRED', 'FAILED') "  # noqa: S608 - constants only
                f"AND NOT action_done AND {owned_clause('folder')} "
                "ORDER BY updated_at, id LIMIT %(limit)s",
                {"token": self._token, "limit": limit},
            )
            return [file_row(r) for r in await cursor.fetchall()]

    async def mark_done(self, file_ids: Sequence[int], now: float) -> None:
        """TRANSFERRED → DONE; all or nothing, fenced by the folders' leases."""
        ids = unique_ids(file_ids)
        async with self._pg.tx(durable=False) as conn:  # lost: the post-action runs again
            await fence(conn, await _folders_of(conn, ids), self._token)
            cursor = await conn.execute(
                "UPDATE files SET state = 'DONE', action_done = true, action_error = NULL, "
                "updated_at = %s WHERE id = ANY(%s) AND state = 'TRANSFERRED'",
                (now, ids),
            )
            if cursor.rowcount != len(ids):
                raise InvalidTransitionError(
                    f"{len(ids) - cursor.rowcount} of {len(ids)} files are unknown or not "
                    "TRANSFERRED"
                )

    async def mark_failed_handled(self, file_ids: Sequence[int], now: float) -> int:
        """FAILED rows: their post-action is done (rows no longer FAILED are skipped)."""
        ids = unique_ids(file_ids)
        async with self._pg.tx() as conn:
            await fence(conn, await _folders_of(conn, ids), self._token)
            cursor = await conn.execute(
                "UPDATE files SET action_done = true, action_error = NULL, updated_at = %s "
                "WHERE id = ANY(%s) AND state = 'FAILED'",
                (now, ids),
            )
            return cursor.rowcount

    async def requeue_failed(self, now: float, folder: str | None = None) -> int:
        """FAILED → STABLE with a fresh attempt count, unless a newer version exists."""
        async with self._pg.tx() as conn:
            cursor = await conn.execute(
                "UPDATE files SET state = 'STABLE', batch_id = NULL, attempts = 0, error = NULL, "
                "action_done = false, action_error = NULL, stable_at = %(now)s, "
                "updated_at = %(now)s WHERE state = 'FAILED' "
                "AND (%(folder)s::text IS NULL OR folder = %(folder)s) AND NOT EXISTS "
                "(SELECT 1 FROM files AS newer WHERE newer.folder = files.folder "
                "AND newer.relpath = files.relpath AND newer.id > files.id)",
                {"now": now, "folder": folder},
            )
            changed = cursor.rowcount
        log.info("failed_requeued", files=changed, folder=folder)
        return changed

    async def set_error(self, file_id: int, error: str, now: float) -> None:
        async with self._pg.tx() as conn:
            cursor = await conn.execute(
                "UPDATE files SET action_error = %s, updated_at = %s WHERE id = %s",
                (error, now, file_id),
            )
            if cursor.rowcount != 1:
                raise InvalidTransitionError(f"unknown file {file_id}")


async def _folders_of(conn: Conn, ids: list[int]) -> set[str]:
    cursor = await conn.execute("SELECT DISTINCT folder FROM files WHERE id = ANY(%s)", (ids,))
    return {str(r[0]) for r in await cursor.fetchall()}


async def _revive_gone(conn: Conn, params: dict[str, object]) -> list[int]:
    cursor = await conn.execute(
        "UPDATE files SET state = 'STABLE', batch_id = NULL, stable_at = %(now)s, "  # noqa: S608 - constants only
        f"updated_at = %(now)s, error = NULL WHERE id IN (SELECT g.id FROM ({_KEYS}) AS k "
        "CROSS JOIN LATERAL (SELECT id FROM files AS f WHERE f.folder = %(folder)s "
        "AND f.relpath = k.relpath AND f.size = k.size AND f.mtime_ns = k.mtime_ns "
        "AND f.inode = k.inode AND (f.state || '') = 'GONE' OFFSET 0) AS g) RETURNING id",
        params,
    )
    return sorted(int(r[0]) for r in await cursor.fetchall())
