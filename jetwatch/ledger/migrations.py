"""The ledger's schema as an append-only list of migrations, one per ``user_version`` step."""

from __future__ import annotations

from jetwatch.domain.states import BatchState, FileState


def _states(enum: type[FileState] | type[BatchState]) -> str:
    return ", ".join(f"'{member.value}'" for member in enum)


_V1 = (
    f"""CREATE TABLE batches (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        folder TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ({_states(BatchState)})),
        job_id TEXT,
        delivery_id TEXT,
        attempt INTEGER NOT NULL,
        parent_id INTEGER REFERENCES batches(id) ON DELETE SET NULL,
        not_before REAL NOT NULL,
        created_at REAL NOT NULL,
        submitted_at REAL,
        updated_at REAL NOT NULL,
        held_reason TEXT,
        file_count INTEGER NOT NULL,
        total_bytes INTEGER NOT NULL,
        last_error TEXT)""",
    "CREATE INDEX batches_by_state ON batches(state, not_before)",
    "CREATE INDEX batches_by_parent ON batches(parent_id)",
    "CREATE INDEX batches_by_delivery ON batches(delivery_id) WHERE delivery_id IS NOT NULL",
    f"""CREATE TABLE files (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        folder TEXT NOT NULL,
        relpath TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ({_states(FileState)})),
        batch_id INTEGER REFERENCES batches(id),
        attempts INTEGER NOT NULL DEFAULT 0,
        stable_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        error TEXT,
        action_done INTEGER NOT NULL DEFAULT 0,
        action_error TEXT)""",
    # The unique key doubles as the (folder, relpath) index for the in-flight check.
    "CREATE UNIQUE INDEX files_by_key ON files(folder, relpath, size, mtime_ns, inode)",
    "CREATE INDEX files_by_folder_state ON files(folder, state, stable_at, id)",
    "CREATE INDEX files_by_state ON files(state, action_done, updated_at)",
    "CREATE INDEX files_by_batch ON files(batch_id) WHERE batch_id IS NOT NULL",
    """CREATE TABLE folders (
        name TEXT PRIMARY KEY,
        mode TEXT,
        mode_reason TEXT,
        last_scan_at REAL,
        files_seen INTEGER,
        scan_duration_s REAL)""",
)

# v2: counts by folder and state kept by triggers, so status and the systemd STATUS line
# read a handful of rows instead of grouping a million (70-85 ms at 1M files, every 10 s).
# A folder gets a row for every state when its first file arrives, so the per-row triggers
# are plain UPDATEs: an UPSERT per inserted row cost 8 us, twice the insert itself. A
# migration that adds a FileState must add its rows for the folders already there.
_STATES = [state.value for state in FileState]
_STATE_ROWS = ", ".join(f"(NEW.folder, '{state}', 0)" for state in _STATES)
_STATE_LIST = ", ".join(f"('{state}')" for state in _STATES)
_SEED = f"INSERT INTO file_counts (folder, state, files) VALUES {_STATE_ROWS};"  # noqa: S608 - constants only
_NEW_FOLDER = "NOT EXISTS (SELECT 1 FROM file_counts WHERE folder = NEW.folder)"
_BUMP = "UPDATE file_counts SET files = files + 1 WHERE folder = NEW.folder AND state = NEW.state;"
_DROP = "UPDATE file_counts SET files = files - 1 WHERE folder = OLD.folder AND state = OLD.state;"
_V2 = (
    """CREATE TABLE file_counts (
        folder TEXT NOT NULL,
        state TEXT NOT NULL,
        files INTEGER NOT NULL,
        PRIMARY KEY (folder, state)) WITHOUT ROWID""",
    "INSERT INTO file_counts (folder, state, files) "
    "SELECT folder, state, count(*) FROM files GROUP BY folder, state",
    "INSERT OR IGNORE INTO file_counts (folder, state, files) "  # noqa: S608 - constants only
    "SELECT f.folder, s.column1, 0 FROM (SELECT DISTINCT folder FROM files) AS f, "
    f"(VALUES {_STATE_LIST}) AS s",
    f"CREATE TRIGGER files_count_seed BEFORE INSERT ON files WHEN {_NEW_FOLDER} BEGIN {_SEED} END",
    f"CREATE TRIGGER files_count_insert AFTER INSERT ON files BEGIN {_BUMP} END",
    f"CREATE TRIGGER files_count_delete AFTER DELETE ON files BEGIN {_DROP} END",
    # Only raw SQL moves a row to another folder; the API never does.
    "CREATE TRIGGER files_count_move BEFORE UPDATE OF folder ON files "
    f"WHEN OLD.folder IS NOT NEW.folder AND {_NEW_FOLDER} BEGIN {_SEED} END",
    "CREATE TRIGGER files_count_update AFTER UPDATE OF folder, state ON files "
    f"WHEN OLD.state IS NOT NEW.state OR OLD.folder IS NOT NEW.folder BEGIN {_DROP} {_BUMP} END",
)

# One entry per schema version: MIGRATIONS[n] takes user_version n to n + 1. Append only.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2)
SCHEMA_VERSION = len(MIGRATIONS)
TABLES = frozenset({"files", "batches", "folders", "file_counts", "sqlite_sequence"})
