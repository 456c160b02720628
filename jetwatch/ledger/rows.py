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
    and the SQL text stays constant.
    """
    return json.dumps(list(ids))
