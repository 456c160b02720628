"""Prometheus metrics: every metric jetwatch exports is declared here, once.

Components import the objects they move; ``ops.py`` serves them. Label ``folder`` is the
folder's configured name (its path when it has none).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

FILES_DETECTED = Counter(
    "jetwatch_files_detected_total",
    "Candidate files seen by events or scans.",
    ["folder"],
    registry=REGISTRY,
)
FILES_SETTLED = Counter(
    "jetwatch_files_settled_total",
    "Files found complete and queued.",
    ["folder"],
    registry=REGISTRY,
)
FILES_SUBMITTED = Counter(
    "jetwatch_files_submitted_total",
    "Files submitted in a delivery.",
    ["folder"],
    registry=REGISTRY,
)
FILES_TRANSFERRED = Counter(
    "jetwatch_files_transferred_total",
    "Files whose delivery completed.",
    ["folder"],
    registry=REGISTRY,
)
FILES_SKIPPED = Counter(
    "jetwatch_files_skipped_total",
    "Files Jet skipped as already at the destination.",
    ["folder"],
    registry=REGISTRY,
)
FILES_FAILED = Counter(
    "jetwatch_files_failed_total",
    "Files given up after max_attempts.",
    ["folder"],
    registry=REGISTRY,
)
FILES_IGNORED = Counter(
    "jetwatch_files_ignored_total",
    "Files not sent because of their name.",
    ["folder", "reason"],
    registry=REGISTRY,
)
FILES_VANISHED = Counter(
    "jetwatch_files_vanished_total",
    "Files that disappeared before they were submitted.",
    ["folder"],
    registry=REGISTRY,
)
BYTES_TRANSFERRED = Counter(
    "jetwatch_bytes_transferred_total",
    "Bytes of files whose delivery completed.",
    ["folder"],
    registry=REGISTRY,
)
POST_ACTION_ERRORS = Counter(
    "jetwatch_post_action_errors_total",
    "Failed keep/move/delete attempts (retried).",
    ["folder"],
    registry=REGISTRY,
)
BATCHES_IN_FLIGHT = Gauge(
    "jetwatch_batches_in_flight",
    "Batches submitted and not finished.",
    ["folder"],
    registry=REGISTRY,
)
BATCHES_HELD = Gauge(
    "jetwatch_batches_held",
    "Batches held (job paused, missing or forbidden).",
    ["folder"],
    registry=REGISTRY,
)
OLDEST_PENDING_SECONDS = Gauge(
    "jetwatch_oldest_pending_seconds",
    "Age of the oldest file not yet delivered.",
    ["folder"],
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "jetwatch_api_requests_total",
    "API requests by route template and outcome.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
API_LATENCY = Histogram(
    "jetwatch_api_latency_seconds",
    "API request latency.",
    ["method", "route"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
TOKEN_REFRESHES = Counter(
    "jetwatch_token_refreshes_total",
    "OAuth tokens fetched.",
    registry=REGISTRY,
)
SCAN_DURATION = Histogram(
    "jetwatch_scan_duration_seconds",
    "Full scan duration.",
    ["folder"],
    buckets=(0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
SCAN_FILES = Gauge(
    "jetwatch_scan_files",
    "Files seen by the last full scan.",
    ["folder"],
    registry=REGISTRY,
)
WATCH_MODE = Gauge(
    "jetwatch_watch_mode",
    "1 for the folder's current watch mode (events, scan, down).",
    ["folder", "mode"],
    registry=REGISTRY,
)
LEDGER_BYTES = Gauge(
    "jetwatch_ledger_bytes",
    "Size of the ledger file and its WAL.",
    registry=REGISTRY,
)
LEDGER_ERRORS = Counter(
    "jetwatch_ledger_errors_total",
    "Ledger writes that failed (disk full, read-only).",
    registry=REGISTRY,
)
LOOP_LAG_SECONDS = Gauge(
    "jetwatch_loop_lag_seconds",
    "Event-loop lag measured by the health ticker.",
    registry=REGISTRY,
)
FLEET_MEMBERS = Gauge(
    "jetwatch_fleet_members",
    "Live daemons on the ledger (1 for a SQLite ledger).",
    registry=REGISTRY,
)
FOLDER_OWNED = Gauge(
    "jetwatch_folder_owned",
    "1 while this daemon holds the folder's lease (acts on it), else 0 (standby).",
    ["folder"],
    registry=REGISTRY,
)
FOLDER_OWNER = Gauge(
    "jetwatch_folder_owner_info",
    "1 for the daemon (host, pid) holding each folder's lease, as the ledger says.",
    ["folder", "host", "pid"],
    registry=REGISTRY,
)
FLEET_HEARTBEAT_AGE = Gauge(
    "jetwatch_fleet_heartbeat_age_seconds",
    "Seconds since each daemon on the ledger renewed its leases.",
    ["host", "pid", "version"],
    registry=REGISTRY,
)
LEASE_ROUND_FAILURES = Counter(
    "jetwatch_lease_round_failures_total",
    "Lease rounds (renew/claim) that failed: the database could not be reached.",
    registry=REGISTRY,
)
