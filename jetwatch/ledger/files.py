"""File-level transitions of the SQLite ledger: what intake records and post-actions finish.

Each public method is one transaction on the ledger's connection; they run in the ledger's
worker thread (see :class:`~jetwatch.ledger.sqlite.SqliteLedger`), never on the event loop.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

import structlog

from jetwatch.domain.states import FileKey, FileRow, InvalidTransitionError
from jetwatch.domain.store import from_i64, to_i64
from jetwatch.domain.versions import EarlierVersion
from jetwatch.ledger.db import Db
from jetwatch.ledger.rows import FILE_JSON, file_rows_of, id_list, json_param, unique_ids

log = structlog.get_logger(__name__)


class FileRecords:
    """The files table: intake (settled, gone) and post-actions (done, failed, errors)."""

    def __init__(self, db: Db, reader: Db | None = None) -> None:
        self._db = db
        # Bulk reads go here when given: they must not hold the lock every other call needs.
        self._reader = reader

    # intake

    def known_fingerprints(self, folder: str) -> set[int]:
        """Fingerprints (see ``key_fingerprint``) of the folder's rows, except GONE ones.

        A GONE row was never submitted: if its file comes back unchanged it must be offered
        again (``add_stable`` revives the row), e.g. after a share came back.
        """
        with (self._reader or self._db).read() as conn:
            # The stored tuple is exactly what key_fingerprint hashes; rows stream, none kept
            # (one JSON chunk of 50,000 rows at a time cost more memory and start-up time).
            cursor = conn.execute(
                "SELECT relpath, size, mtime_ns, inode FROM files "
                "WHERE folder = ? AND state != 'GONE'",
                (folder,),
            )
            return {hash(row) for row in cursor}

    def is_known(self, folder: str, key: FileKey) -> bool:
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT 1 FROM files WHERE folder = ? AND relpath = ? AND size = ? "
                "AND mtime_ns = ? AND inode = ?",
                (folder, key.relpath, key.size, key.mtime_ns, to_i64(key.inode)),
            ).fetchone()
        return row is not None

    def add_stable(self, folder: str, keys: Sequence[FileKey], now: float) -> list[int]:
        """Record settled files; known keys are ignored. Returns the ids of new rows, in order.

        A new version of a path makes an older version still waiting in STABLE GONE: both
        would send the same bytes, since a delivery names a path, not a version. A key whose
        row is GONE (never submitted) is revived to STABLE and its id returned after the new.
        """
        if not keys:
            return []
        rows = json_param((k.relpath, k.size, k.mtime_ns, to_i64(k.inode)) for k in keys)
        # Not synced: lost to a power cut, the files are found and settled again.
        with self._db.write(durable=False) as conn:
            (last_id,) = conn.execute("SELECT coalesce(max(id), 0) FROM files").fetchone()
            # One statement for all rows, in their order (see json_param).
            conn.execute(
                "INSERT OR IGNORE INTO files (folder, relpath, size, mtime_ns, inode, state, "
                "stable_at, updated_at) SELECT ?1, json_extract(value, '$[0]'), "
                "json_extract(value, '$[1]'), json_extract(value, '$[2]'), "
                "json_extract(value, '$[3]'), 'STABLE', ?2, ?2 FROM json_each(?3) ORDER BY key",
                (folder, now, rows),
            )
            # AUTOINCREMENT ids only grow and this transaction holds the write lock.
            (new,) = conn.execute(
                "SELECT json_group_array(id) FROM files WHERE id > ?", (last_id,)
            ).fetchone()
            new_ids = sorted(json.loads(new))
            if new_ids:
                conn.execute(
                    "UPDATE files SET state = 'GONE', updated_at = ?, "
                    "error = 'superseded by a newer version before it was sent' "
                    # CROSS JOIN and +state pin the plan: walk new rows, probe (folder, relpath).
                    "WHERE id IN (SELECT old.id FROM files AS new CROSS JOIN files AS old "
                    "ON old.folder = new.folder AND old.relpath = new.relpath "
                    "WHERE new.id > ? AND old.id < new.id AND +old.state = 'STABLE')",
                    (now, last_id),
                )
            if len(new_ids) < len(keys):
                new_ids += _revive_gone(conn, folder, keys, now)
        return new_ids

    def earlier_versions(self, folder: str, file_ids: Sequence[int]) -> list[EarlierVersion]:
        """For each of the new rows ``file_ids``, the last older version of its path that
        was sent (SUBMITTED, TRANSFERRED or DONE), if any."""
        ids = unique_ids(file_ids)
        if not ids:
            return []
        with self._db.read() as conn:
            rows = conn.execute(
                # Joined from the ids (see id_list): never a walk of the folder's rows.
                "SELECT new.id, new.relpath, new.size, new.mtime_ns, new.inode, new.stable_at, "
                "old.size, old.mtime_ns, old.inode, old.stable_at FROM json_each(?) AS j "
                "CROSS JOIN files AS new ON new.id = j.value "
                "CROSS JOIN files AS old ON old.folder = new.folder AND old.relpath = new.relpath "
                "WHERE new.folder = ? "
                "AND old.id < new.id AND old.state IN ('SUBMITTED', 'TRANSFERRED', 'DONE') "
                "ORDER BY new.id, old.id",
                (id_list(ids), folder),
            ).fetchall()
        last: dict[int, EarlierVersion] = {}  # the newest older version wins
        for r in rows:
            new = FileKey(r[1], r[2], r[3], from_i64(r[4]))
            old = FileKey(r[1], r[6], r[7], from_i64(r[8]))
            last[r[0]] = EarlierVersion(new, r[5], old, r[9])
        return list(last.values())

    def mark_gone(self, file_ids: Sequence[int], now: float) -> int:
        """STABLE/BATCHED → GONE; rows already further along are left alone. Returns the count.

        An OPEN or HELD batch left without files becomes FAILED, so nothing POSTs it empty.
        """
        ids = unique_ids(file_ids)
        if not ids:
            return 0
        with self._db.write() as conn:
            batch_ids = [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT batch_id FROM files WHERE +state = 'BATCHED' "
                    "AND id IN (SELECT value FROM json_each(?))",
                    (id_list(ids),),
                )
            ]
            changed = conn.execute(
                "UPDATE files SET state = 'GONE', updated_at = ? "
                "WHERE id IN (SELECT value FROM json_each(?)) AND +state IN ('STABLE', 'BATCHED')",
                (now, id_list(ids)),
            ).rowcount
            conn.execute(
                "UPDATE batches SET state = 'FAILED', updated_at = ?, "
                "last_error = 'every file vanished before submission' "
                "WHERE id IN (SELECT value FROM json_each(?)) AND +state IN ('OPEN', 'HELD') "
                "AND NOT EXISTS "
                "(SELECT 1 FROM files WHERE batch_id = batches.id AND state = 'BATCHED')",
                (now, id_list(batch_ids)),
            )
        return int(changed)

    def follow_version(self, file_id: int, key: FileKey, now: float) -> bool:
        """A SUBMITTED row's delivery carried the file as ``key`` (Jet followed it while it
        grew): the row takes that key, and a row of ``key`` never sent (STABLE, GONE) goes.

        False (nothing changed) when another row of ``key`` is on its own way.
        """
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT folder, relpath, state FROM files WHERE id = ?", (file_id,)
            ).fetchone()
            if row is None or row[2] != "SUBMITTED" or row[1] != key.relpath:
                raise InvalidTransitionError(f"follow_version({file_id}): not a SUBMITTED row")
            same_key = (row[0], key.relpath, key.size, key.mtime_ns, to_i64(key.inode))
            other = conn.execute(
                "SELECT id, state FROM files WHERE folder = ? AND relpath = ? AND size = ? "
                "AND mtime_ns = ? AND inode = ?",
                same_key,
            ).fetchone()
            if other is not None and other[0] != file_id:
                if other[1] not in ("STABLE", "GONE"):
                    return False
                conn.execute("DELETE FROM files WHERE id = ?", (other[0],))
            conn.execute(
                "UPDATE files SET size = ?, mtime_ns = ?, inode = ?, updated_at = ? WHERE id = ?",
                (key.size, key.mtime_ns, to_i64(key.inode), now, file_id),
            )
        return True

    # post-actions

    def pending_actions(self, limit: int = 500) -> list[FileRow]:
        """TRANSFERRED rows and FAILED rows whose post-action is still to do, least recent first."""
        with self._db.read() as conn:
            (rows,) = conn.execute(
                f"SELECT json_group_array({FILE_JSON}) FROM (SELECT * FROM files "  # noqa: S608 - constants only
                "WHERE state IN ('TRANSFERRED', 'FAILED') AND action_done = 0 "
                "ORDER BY updated_at, id LIMIT ?)",
                (limit,),
            ).fetchone()
        # One step for all rows (see json_param); the order is set here, not by SQLite.
        return sorted(file_rows_of(rows), key=lambda f: (f.updated_at, f.id))

    def mark_done(self, file_ids: Sequence[int], now: float) -> None:
        """TRANSFERRED → DONE (post-action applied); all or nothing."""
        ids = unique_ids(file_ids)
        # Not synced: lost to a power cut, the post-action runs again (kept, or gone already).
        with self._db.write(durable=False) as conn:
            changed = conn.execute(
                "UPDATE files SET state = 'DONE', action_done = 1, action_error = NULL, "
                "updated_at = ? WHERE id IN (SELECT value FROM json_each(?)) "
                "AND +state = 'TRANSFERRED'",
                (now, id_list(ids)),
            ).rowcount
            if changed != len(ids):
                # Raising inside the transaction rolls back the part that did apply.
                raise InvalidTransitionError(
                    f"{len(ids) - changed} of {len(ids)} files are unknown or not TRANSFERRED"
                )

    def mark_failed_handled(self, file_ids: Sequence[int], now: float) -> int:
        """FAILED rows: their post-action (e.g. move to failed_dir) is done. Returns the count.

        Rows no longer FAILED are skipped: ``jetwatch ledger retry-failed`` may have queued
        them again from another process meanwhile.
        """
        with self._db.write() as conn:
            changed = conn.execute(
                "UPDATE files SET action_done = 1, action_error = NULL, updated_at = ? "
                "WHERE id IN (SELECT value FROM json_each(?)) AND +state = 'FAILED'",
                (now, id_list(unique_ids(file_ids))),
            ).rowcount
        return int(changed)

    def requeue_failed(self, now: float, folder: str | None = None) -> int:
        """FAILED → STABLE with a fresh attempt count, unless a newer version of the path exists.

        For ``jetwatch ledger retry-failed``; returns how many files were queued again.
        """
        with self._db.write() as conn:
            changed = conn.execute(
                "UPDATE files SET state = 'STABLE', batch_id = NULL, attempts = 0, error = NULL, "
                "action_done = 0, action_error = NULL, stable_at = ?1, updated_at = ?1 "
                "WHERE state = 'FAILED' AND (?2 IS NULL OR folder = ?2) AND NOT EXISTS "
                "(SELECT 1 FROM files AS newer WHERE newer.folder = files.folder "
                "AND newer.relpath = files.relpath AND newer.id > files.id)",
                (now, folder),
            ).rowcount
        log.info("failed_requeued", files=changed, folder=folder)
        return int(changed)

    def set_error(self, file_id: int, error: str, now: float) -> None:
        """Record a post-action failure (shown in status); the state stays, it is retried."""
        with self._db.write() as conn:
            changed = conn.execute(
                "UPDATE files SET action_error = ?, updated_at = ? WHERE id = ?",
                (error, now, file_id),
            ).rowcount
            if changed != 1:
                raise InvalidTransitionError(f"unknown file {file_id}")


def _revive_gone(
    conn: sqlite3.Connection, folder: str, keys: Sequence[FileKey], now: float
) -> list[int]:
    """GONE → STABLE for keys that came back unchanged; only called when some key was known."""
    (found,) = conn.execute(
        # In the keys' order; one step for all of them (see json_param).
        "SELECT json_group_array(f.id) FROM (SELECT f.id FROM json_each(?2) AS j "
        "CROSS JOIN files AS f ON f.folder = ?1 AND f.relpath = json_extract(j.value, '$[0]') "
        "AND f.size = json_extract(j.value, '$[1]') AND f.mtime_ns = json_extract(j.value, '$[2]') "
        "AND f.inode = json_extract(j.value, '$[3]') WHERE f.state = 'GONE' ORDER BY j.key) AS f",
        (folder, json_param((k.relpath, k.size, k.mtime_ns, to_i64(k.inode)) for k in keys)),
    ).fetchone()
    revived = unique_ids(json.loads(found))
    if revived:
        conn.execute(
            "UPDATE files SET state = 'STABLE', batch_id = NULL, stable_at = ?1, updated_at = ?1, "
            "error = NULL WHERE id IN (SELECT value FROM json_each(?2))",
            (now, id_list(revived)),
        )
    return revived
