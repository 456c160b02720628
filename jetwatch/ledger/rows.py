"""Row mapping of the SQLite ledger: the column lists, row builders and id parameters."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from jetwatch.domain.states import BatchRow, BatchState, FileRow, FileState, HoldReason
from jetwatch.domain.store import from_i64

_FILE_STATES = {state.value: state for state in FileState}
_BATCH_STATES = {state.value: state for state in BatchState}
FILE_COLUMNS = (
    "id, folder, relpath, size, mtime_ns, inode, state, batch_id, attempts, stable_at, "
    "updated_at, error, action_done, action_error"
)
BATCH_COLUMNS = (
    "id, folder, state, job_id, delivery_id, attempt, parent_id, not_before, created_at, "
    "submitted_at, updated_at, held_reason, file_count, total_bytes, last_error"
)


def file_row(r: Sequence[Any]) -> FileRow:
    """Build a FileRow from a row selected as FILE_COLUMNS (positional: this is a hot path)."""
    return FileRow(
        r[0], r[1], r[2], r[3], r[4], from_i64(r[5]), _FILE_STATES[r[6]], r[7], r[8], r[9],
        r[10], r[11], r[12] == 1, r[13],
    )  # fmt: skip


def batch_row(r: Sequence[Any]) -> BatchRow:
    """Build a BatchRow from a row selected as BATCH_COLUMNS."""
    return BatchRow(
        r[0], r[1], _BATCH_STATES[r[2]], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10],
        HoldReason.from_stored(r[11]), r[12], r[13], r[14],
    )  # fmt: skip


def unique_ids(ids: Iterable[int]) -> list[int]:
    """The ids without repeats, in their first order."""
    return list(dict.fromkeys(ids))


def id_list(ids: Iterable[int]) -> str:
    """Ids as one JSON parameter for ``IN (SELECT value FROM json_each(?))``.

    One parameter instead of a variable-length ``IN (?, ?, ...)``: no host-parameter limit
    and the SQL text stays constant. A statement over such a list must reach its rows by
    their ids: a ``state`` or ``folder`` term beside it is written ``+state`` (or the ids
    are joined first), or SQLite may walk that index instead, every row in the state or
    the folder (a million) for each call; ``tests/unit/test_ledger_plans.py`` checks it.
    """
    return json.dumps(list(ids))


def json_param(rows: Iterable[Sequence[Any]]) -> str:
    """Rows as one JSON parameter for ``json_each(?)``, so a bulk write is one statement.

    One statement is one ``sqlite3_step``: ``executemany`` of 1,000 rows releases and takes
    back the GIL 1,000 times, and with the event loop busy each take waits for a switch
    interval (5 ms), so 1,000 updates took seconds instead of milliseconds. Non-ASCII is
    kept as it is: a name that cannot be bound as text fails as it did as a parameter.
    """
    return json.dumps(list(rows), ensure_ascii=False, separators=(",", ":"))


# A REAL as text that reads back to the same float (SQLite's JSON keeps 15 digits only).
_EXACT = "printf('%!.17g', {})"
# FILE_COLUMNS as one JSON array per row, for ``json_group_array``: one step for all rows.
FILE_JSON = (
    "json_array(id, folder, relpath, size, mtime_ns, inode, state, batch_id, attempts, "
    f"{_EXACT.format('stable_at')}, {_EXACT.format('updated_at')}, error, action_done, "
    "action_error)"
)


def exact(column: str) -> str:
    """``column`` (a REAL) as exact text inside a JSON result (see FILE_JSON)."""
    return _EXACT.format(column)


def file_rows_of(aggregated: str | None) -> list[FileRow]:
    """FileRows from a ``json_group_array(FILE_JSON)`` result (None: no rows)."""
    if not aggregated:
        return []
    return [_json_file_row(r) for r in json.loads(aggregated)]


def _json_file_row(r: Sequence[Any]) -> FileRow:
    return FileRow(
        r[0], r[1], r[2], r[3], r[4], from_i64(r[5]), _FILE_STATES[r[6]], r[7], r[8],
        float(r[9]), float(r[10]), r[11], r[12] == 1, r[13],
    )  # fmt: skip
