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
    "Files not sent because of their name or type (symlink, fifo, socket, device).",
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
IN_DOUBT = Counter(
    "jetwatch_in_doubt_total",
    "Batches whose submission's outcome was unknown, by how each was settled: adopted (the "
    "target showed it), not_received (proven absent), resent_idle (sent again once nothing "
    "that may be it was in progress), resent_after_max_wait.",
    ["outcome"],
    registry=REGISTRY,
)
IN_DOUBT_WAITING = Gauge(
    "jetwatch_in_doubt_waiting",
    "Batches in doubt waiting until the first delivery, if it exists, can no longer be copying.",
    registry=REGISTRY,
)
DELIVERIES_REDELIVERED = Counter(
    "jetwatch_deliveries_redelivered_total",
    "Deliveries sent again without counting an attempt: stalled (no change for stall_seconds "
    "and nothing in progress) or failed while their job was paused.",
    ["folder", "reason"],
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
INOTIFY_WATCHES = Gauge(
    "jetwatch_inotify_watches",
    "inotify watches the folder's event watcher holds, as its last audit found (folders "
    "that started watching together share one watcher: each shows its total).",
    ["folder"],
    registry=REGISTRY,
)
VERSION_NOTICES = Counter(
    "jetwatch_version_notices_total",
    "New versions warned about: same_size_mtime (Jet skips it), written_again (after delivery).",
    ["folder", "kind"],
    registry=REGISTRY,
)
WATCH_FAILURES = Counter(
    "jetwatch_watch_failures_total",
    "Event watchers ended (failed, incomplete or deaf) and replaced by scans.",
    ["folder"],
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
# ---- delivery progress (set when /metrics is scraped, from the tracker's last polls) ---
DELIVERY_BYTES_DONE = Gauge(
    "jetwatch_delivery_bytes_done",
    "Bytes the back end reports done for the folder's deliveries in flight.",
    ["folder"],
    registry=REGISTRY,
)
DELIVERY_BYTES_TOTAL = Gauge(
    "jetwatch_delivery_bytes_total",
    "Bytes of the folder's deliveries in flight.",
    ["folder"],
    registry=REGISTRY,
)
DELIVERY_FILES_DONE = Gauge(
    "jetwatch_delivery_files_done",
    "Files transferred or skipped so far in the folder's deliveries in flight.",
    ["folder"],
    registry=REGISTRY,
)
DELIVERY_FILES_TOTAL = Gauge(
    "jetwatch_delivery_files_total",
    "Files of the folder's deliveries in flight.",
    ["folder"],
    registry=REGISTRY,
)
DELIVERY_RATE = Gauge(
    "jetwatch_delivery_bytes_per_second",
    "Bytes per second of the folder's deliveries in flight, from their counts (last minute).",
    ["folder"],
    registry=REGISTRY,
)
DELIVERY_ETA_SECONDS = Gauge(
    "jetwatch_delivery_eta_seconds",
    "Seconds until the folder's slowest delivery in flight is done, at its rate (0: unknown).",
    ["folder"],
    registry=REGISTRY,
)
# ---- notifications ---------------------------------------------------------------------
NOTIFICATIONS_SENT = Counter(
    "jetwatch_notifications_sent_total",
    "Webhook notifications delivered, by event (failed, held, recovered, down).",
    ["event"],
    registry=REGISTRY,
)
NOTIFY_ERRORS = Counter(
    "jetwatch_notify_errors_total",
    "Webhook POST attempts that failed (each is retried up to [notify] max_attempts).",
    registry=REGISTRY,
)
NOTIFICATIONS_DROPPED = Counter(
    "jetwatch_notifications_dropped_total",
    "Notifications never delivered: queue_full (the buffer was full) or gave_up (attempts).",
    ["reason"],
    registry=REGISTRY,
)
NOTIFY_WEBHOOK_UP = Gauge(
    "jetwatch_notify_webhook_up",
    "1 while the webhook's last POST worked (or none failed yet), 0 while it fails.",
    registry=REGISTRY,
)
# ---- the fleet on a shared (PostgreSQL) ledger -----------------------------------------
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
