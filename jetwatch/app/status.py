"""The status report: a ledger snapshot rendered as aligned text for operators, or as JSON."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jetwatch.app.ledgers import open_reader
from jetwatch.app.output import plural, table
from jetwatch.config.settings import LedgerSettings
from jetwatch.domain.fleet import Fleet
from jetwatch.domain.report import (
    FailedFile,
    FolderStatus,
    HeldBatch,
    InFlightBatch,
    StatusSnapshot,
)
from jetwatch.domain.states import FileState

_STATES = tuple(state.value for state in FileState)
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
PROGRESS_HEADERS = ["DONE", "RATE", "ETA"]
Progress = Mapping[int, Mapping[str, Any]]  # batch id → the daemon's progress of it


async def load_snapshot(ledger_path: Path, now: float) -> StatusSnapshot:
    """Read a SQLite ledger's snapshot read-only; works while the daemon runs or is down.

    A missing ledger raises ``LedgerError`` naming the path.
    """
    return (await load_status(LedgerSettings(path=ledger_path), now))[0]


async def load_status(settings: LedgerSettings, now: float) -> tuple[StatusSnapshot, Fleet]:
    """The configured ledger's snapshot and fleet, read-only, daemon running or not."""
    async with await open_reader(settings) as ledger:
        return await ledger.snapshot(now), await ledger.fleet()


def fleet_json(fleet: Fleet, me: str = "") -> dict[str, Any]:
    """Every daemon on the ledger (host, pid, version, heartbeat age, folders owned) and
    each folder's owner; ``me`` marks the asking daemon."""
    return {
        "shared": fleet.shared,
        "members": [
            {"host": m.host, "pid": m.pid, "version": m.version, "alive": m.alive,
             "heartbeat_age_s": m.heartbeat_age_s, "started_at": m.started_at,
             "folders": list(m.folders), "this_daemon": bool(me) and m.token == me}
            for m in fleet.members
        ],
        "owners": [
            {"folder": o.folder, "host": o.host, "pid": o.pid, "expires_in_s": o.expires_in_s,
             "lapsed": o.expires_in_s <= 0}
            for o in fleet.owners
        ],
    }  # fmt: skip


def render_fleet(fleet: Fleet) -> list[str]:
    """The FLEET section of ``jetwatch status`` (empty for a one-host ledger)."""
    if not fleet.shared:
        return []
    alive = [m for m in fleet.members if m.alive]
    lines = ["", f"FLEET ({len(alive)} daemon(s) alive)"]
    rows = [
        [m.host, str(m.pid), m.version, format_age(m.heartbeat_age_s),
         "alive" if m.alive else "gone", str(len(m.folders))]
        for m in fleet.members
    ]  # fmt: skip
    if rows:
        headers = ["HOST", "PID", "VERSION", "HEARTBEAT", "STATE", "FOLDERS"]
        lines += _table(headers, rows, {1, 5})
    owners = [
        [o.folder, f"{o.host}:{o.pid}",
         f"{format_age(o.expires_in_s)}" if o.expires_in_s > 0 else "LAPSED"]
        for o in fleet.owners
    ]  # fmt: skip
    if owners:
        lines += ["", *_table(["FOLDER", "OWNER", "LEASE LEFT"], owners, set())]
    return lines


def format_age(seconds: float) -> str:
    """A short duration: ``45s``, ``3m02s``, ``1h02m``, ``2d03h``."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def format_bytes(size: int) -> str:
    """A size in binary units with one decimal: ``1.5 GiB``."""
    value = float(size)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _ago(then: float | None, now: float) -> str:
    return "-" if then is None else f"{format_age(now - then)} ago"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    return table(headers, rows, right=right, indent="  ")


def _folder_lines(folders: Sequence[FolderStatus], now: float) -> list[str]:
    if not folders:
        return ["  no folders yet"]
    counts = [
        [f.folder, *(str(f.counts.get(s, 0)) for s in _STATES), _ago(f.oldest_pending_at, now)]
        for f in folders
    ]
    lines = _table(["FOLDER", *_STATES, "OLDEST PENDING"], counts, set(range(1, 8)))
    scans = [
        [
            f.folder,
            f.mode or "-",
            _ago(f.last_scan_at, now),
            "-" if f.files_seen is None else str(f.files_seen),
            "-" if f.scan_duration_s is None else f"{f.scan_duration_s:.1f}s",
            f.mode_reason or "",
        ]
        for f in folders
    ]
    lines.append("")
    lines += _table(["FOLDER", "WATCH", "LAST SCAN", "FILES", "TOOK", "WHY"], scans, {3, 4})
    return lines


def _file_lines(files: Sequence[FailedFile], now: float) -> list[str]:
    rows = [
        [_ago(f.updated_at, now), f.folder, str(f.attempts), f.relpath, f.error or ""]
        for f in files
    ]
    return _table(["WHEN", "FOLDER", "FAILED DELIVERIES", "PATH", "ERROR"], rows, {2})


def progress_cells(progress: Progress | None, batch_id: int) -> list[str]:
    """DONE, RATE and ETA of one batch in flight, from the daemon ("-" before its first poll)."""
    p = None if progress is None else progress.get(batch_id)
    if p is None:
        return ["-", "-", "-"]
    done = (
        f"{float(p.get('fraction') or 0) * 100:.0f}% {p.get('files_done', 0)}/{p.get('files', 0)}"
    )
    if p.get("bytes_total"):
        done += f" {format_bytes(int(p.get('bytes_done') or 0))}"
    rate = "-"
    if p.get("bytes_per_second"):
        rate = f"{format_bytes(int(p['bytes_per_second']))}/s"
    elif p.get("files_per_second"):
        rate = f"{float(p['files_per_second']):.1f} files/s"
    eta = p.get("eta_s")
    return [done, rate, "-" if eta is None else format_age(float(eta))]


def render_text(snapshot: StatusSnapshot, progress: Progress | None = None) -> str:
    """The snapshot as a compact, aligned report an operator can read at a glance.

    ``progress`` (from a running daemon) adds DONE, RATE and ETA to the batches in flight.
    """
    now = snapshot.taken_at
    stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(now))
    held_files = sum(b.file_count for b in snapshot.held)
    lines = [
        f"jetwatch status at {stamp}  ledger {snapshot.ledger_path} "
        f"({format_bytes(snapshot.ledger_bytes)}): "
        f"{plural(snapshot.open_batches, 'batch', 'batches')} waiting to be sent, "
        f"{plural(len(snapshot.held), 'batch', 'batches')} held "
        f"({plural(held_files, 'file')})",
        "",
        "FOLDERS",
        *_folder_lines(snapshot.folders, now),
        "",
        f"IN FLIGHT ({len(snapshot.in_flight)})",
    ]
    flights = [
        [str(b.batch_id), b.folder, b.delivery_id or "-", str(b.file_count),
         format_bytes(b.total_bytes), format_age(b.age_s), str(b.attempt),
         *([] if progress is None else progress_cells(progress, b.batch_id))]
        for b in snapshot.in_flight
    ]  # fmt: skip
    if flights:
        headers = ["BATCH", "FOLDER", "DELIVERY", "FILES", "SIZE", "AGE", "ATTEMPT"]
        headers += [] if progress is None else PROGRESS_HEADERS
        lines += _table(headers, flights, {0, 3, 4, 5, 6, 8, 9})
    lines += ["", f"HELD ({len(snapshot.held)})"]
    held = [
        [str(b.batch_id), b.folder, str(b.file_count), _ago(b.since, now), b.reason or ""]
        for b in snapshot.held
    ]
    if held:
        lines += _table(["BATCH", "FOLDER", "FILES", "SINCE", "WHY"], held, {0, 2})
    lines += ["", f"RECENT FAILURES ({len(snapshot.recent_failures)})"]
    if snapshot.recent_failures:
        lines += _file_lines(snapshot.recent_failures, now)
        lines.append(
            "  (deliveries of the file that failed, whole batches and alone; it is given up "
            "after failing max_attempts times alone)"
        )
    lines += ["", f"POST-ACTION ERRORS ({len(snapshot.action_errors)})"]
    if snapshot.action_errors:
        lines += _file_lines(snapshot.action_errors, now)
    return "\n".join(lines) + "\n"


def _file_json(f: FailedFile) -> dict[str, Any]:
    return {
        "folder": f.folder,
        "relpath": f.relpath,
        "error": f.error,
        "attempts": f.attempts,
        "updated_at": f.updated_at,
    }


def _folder_json(f: FolderStatus, now: float) -> dict[str, Any]:
    scan = None
    if f.last_scan_at is not None:
        scan = {"at": f.last_scan_at, "files": f.files_seen, "duration_s": f.scan_duration_s}
    oldest = f.oldest_pending_at
    return {
        "folder": f.folder,
        "counts": {state: int(f.counts.get(state, 0)) for state in _STATES},
        "watch": {"mode": f.mode, "reason": f.mode_reason},
        "last_scan": scan,
        "oldest_pending_at": oldest,
        "oldest_pending_age_s": None if oldest is None else max(0.0, now - oldest),
    }


def _in_flight_json(b: InFlightBatch) -> dict[str, Any]:
    return {
        "folder": b.folder,
        "batch_id": b.batch_id,
        "delivery_id": b.delivery_id,
        "files": b.file_count,
        "bytes": b.total_bytes,
        "attempt": b.attempt,
        "age_s": b.age_s,
    }


def _held_json(b: HeldBatch) -> dict[str, Any]:
    return {
        "folder": b.folder,
        "batch_id": b.batch_id,
        "reason": b.reason,
        "since": b.since,
        "files": b.file_count,
    }


def to_json(snapshot: StatusSnapshot) -> dict[str, Any]:
    """The snapshot as plain JSON types, with stable keys (scripts and /status rely on them)."""
    now = snapshot.taken_at
    return {
        "taken_at": now,
        "ledger": {"path": snapshot.ledger_path, "bytes": snapshot.ledger_bytes},
        "folders": [_folder_json(f, now) for f in snapshot.folders],
        "open_batches": snapshot.open_batches,
        "in_flight": [_in_flight_json(b) for b in snapshot.in_flight],
        "held": [_held_json(b) for b in snapshot.held],
        "recent_failures": [_file_json(f) for f in snapshot.recent_failures],
        "post_action_errors": [_file_json(f) for f in snapshot.action_errors],
    }
