"""The PostgreSQL ledger's schema: an append-only list of migrations and its own version.

The tables mirror the SQLite ledger's (same columns, same states, same meaning), plus the
folder leases and the fleet's members. Counts by folder and state are kept by
statement-level triggers over transition tables: one aggregate per statement, not a
function call per row. ``jetwatch_meta`` marks the database as a jetwatch ledger and holds
the schema version.
"""

from __future__ import annotations

from jetwatch.domain.states import BatchState, FileState

APPLICATION = "jetwatch-ledger"


def _states(enum: type[FileState] | type[BatchState]) -> str:
    return ", ".join(f"'{member.value}'" for member in enum)


_COUNT_FUNCTION = """CREATE FUNCTION jetwatch_count_files() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO file_counts AS c (folder, state, files)
      SELECT folder, state, count(*) FROM new_rows GROUP BY folder, state ORDER BY 1, 2
      ON CONFLICT (folder, state) DO UPDATE SET files = c.files + excluded.files;
  ELSIF TG_OP = 'DELETE' THEN
    UPDATE file_counts AS c SET files = c.files - d.n
      FROM (SELECT folder, state, count(*) AS n FROM old_rows GROUP BY folder, state) AS d
      WHERE c.folder = d.folder AND c.state = d.state;
  ELSE
    INSERT INTO file_counts AS c (folder, state, files)
      SELECT folder, state, sum(n) FROM (
        SELECT folder, state, -count(*) AS n FROM old_rows GROUP BY folder, state
        UNION ALL
        SELECT folder, state, count(*) FROM new_rows GROUP BY folder, state) AS moved
      GROUP BY folder, state HAVING sum(n) <> 0 ORDER BY 1, 2
      ON CONFLICT (folder, state) DO UPDATE SET files = c.files + excluded.files;
  END IF;
  RETURN NULL;
END $$"""

_V1 = (
    f"""CREATE TABLE batches (
        id BIGSERIAL PRIMARY KEY,
        folder TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ({_states(BatchState)})),
        job_id TEXT,
        delivery_id TEXT,
        attempt INTEGER NOT NULL,
        parent_id BIGINT REFERENCES batches(id) ON DELETE SET NULL,
        not_before DOUBLE PRECISION NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        submitted_at DOUBLE PRECISION,
        updated_at DOUBLE PRECISION NOT NULL,
        held_reason TEXT,
        file_count INTEGER NOT NULL,
        total_bytes BIGINT NOT NULL,
        last_error TEXT)""",
    "CREATE INDEX batches_by_state ON batches(state, not_before)",
    "CREATE INDEX batches_by_parent ON batches(parent_id)",
    "CREATE INDEX batches_by_delivery ON batches(delivery_id) WHERE delivery_id IS NOT NULL",
    f"""CREATE TABLE files (
        id BIGSERIAL PRIMARY KEY,
        folder TEXT NOT NULL,
        relpath TEXT NOT NULL,
        size BIGINT NOT NULL,
        mtime_ns BIGINT NOT NULL,
        inode BIGINT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ({_states(FileState)})),
        batch_id BIGINT,  -- no FOREIGN KEY: its per-row check cost more than a transition
        attempts INTEGER NOT NULL DEFAULT 0,
        stable_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        error TEXT,
        action_done BOOLEAN NOT NULL DEFAULT false,
        action_error TEXT)""",
    # Every state change writes a new row version into each index whose predicate it
    # matches: partial indexes keep a transition's cost to the rows that need finding.
    # A ledger grows by bursts: keep the planner's statistics close behind.
    "ALTER TABLE files SET (autovacuum_analyze_scale_factor = 0.02, "
    "autovacuum_analyze_threshold = 1000, autovacuum_vacuum_scale_factor = 0.05)",
    "CREATE UNIQUE INDEX files_by_key ON files(folder, relpath, size, mtime_ns, inode)",
    "CREATE INDEX files_pending ON files(folder, state, stable_at, id) "
    "WHERE state IN ('STABLE', 'BATCHED', 'SUBMITTED')",
    "CREATE INDEX files_to_act_on ON files(updated_at, id) "
    "WHERE state IN ('TRANSFERRED', 'FAILED') AND NOT action_done",
    "CREATE INDEX files_failed ON files(updated_at, id) WHERE state = 'FAILED'",
    "CREATE INDEX files_by_batch ON files(batch_id) WHERE batch_id IS NOT NULL",
    """CREATE TABLE folders (
        name TEXT PRIMARY KEY,
        mode TEXT,
        mode_reason TEXT,
        last_scan_at DOUBLE PRECISION,
        files_seen BIGINT,
        scan_duration_s DOUBLE PRECISION)""",
    """CREATE TABLE file_counts (
        folder TEXT NOT NULL,
        state TEXT NOT NULL,
        files BIGINT NOT NULL,
        PRIMARY KEY (folder, state))""",
    _COUNT_FUNCTION,
    "CREATE TRIGGER files_count_insert AFTER INSERT ON files REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION jetwatch_count_files()",
    "CREATE TRIGGER files_count_delete AFTER DELETE ON files REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION jetwatch_count_files()",
    "CREATE TRIGGER files_count_update AFTER UPDATE ON files "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION jetwatch_count_files()",
    # One row per folder: its owner's token and identity, expiry on the server's clock.
    """CREATE TABLE leases (
        folder TEXT PRIMARY KEY,
        token TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        version TEXT NOT NULL,
        acquired_at TIMESTAMPTZ NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL)""",
    "CREATE INDEX leases_by_token ON leases(token)",
    """CREATE TABLE members (
        token TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        version TEXT NOT NULL,
        started_at TIMESTAMPTZ NOT NULL,
        heartbeat_at TIMESTAMPTZ NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL)""",
)

# MIGRATIONS[n] takes schema version n to n + 1. Append only.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1,)
SCHEMA_VERSION = len(MIGRATIONS)
TABLES = frozenset(
    {"jetwatch_meta", "files", "batches", "folders", "file_counts", "leases", "members"}
)
