"""What the running daemon shows: readiness, the /status page, systemd's STATUS line, gauges."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from jetwatch import metrics
from jetwatch.app import status as status
from jetwatch.domain.store import LedgerStore
from jetwatch.errors import LedgerError
from jetwatch.intake.folder import FolderIntake
from jetwatch.ops.health import Readiness
from jetwatch.pipeline.ownership import FolderOwnership
from jetwatch.targets.kinds import SPECS
from jetwatch.targets.registry import TargetRegistry, TargetState, api_name


def jobs_json(targets: TargetRegistry) -> list[dict[str, Any]]:
    """One entry per folder: its target, what it names there, and what the last check said."""
    return [
        {
            "folder": s.folder,
            "target": s.kind,
            "job": s.ref,
            "job_id": s.ident,
            "paused": s.paused,
            "problem": s.problem,
        }
        for s in targets.all_status()
    ]


def api_json(targets: TargetRegistry) -> dict[str, Any]:
    """Overall ``ok``/``problem`` and the same per target kind in use."""
    kinds = {
        k: {"ok": targets.api(k).ok, "problem": targets.api(k).problem} for k in targets.kinds()
    }
    return {"ok": targets.api_ok, "problem": targets.api_problem, "targets": kinds}


def _target_reason(state: TargetState) -> str | None:
    spec = SPECS.get(state.kind)
    word = "target" if spec is None else spec.ref_word
    if state.problem or state.ident is None:
        return f"{word} {state.ref!r}: {state.problem or 'not resolved yet'}"
    if state.paused:
        named = "" if state.ref == state.ident else f" ({state.ident})"
        return f"{word} {state.ref!r}{named} is paused: its batches are held"
    return None


def _target_reasons(targets: TargetRegistry) -> list[str]:
    reasons = []
    for kind in targets.kinds():
        api = targets.api(kind)
        name = api_name(kind)
        if not api.ok:
            reasons.append(
                api.problem if api.problem.startswith(name) else f"{name}: {api.problem}"
            )
    for state in targets.all_status():
        reason = _target_reason(state)
        if reason is not None:
            reasons.append(reason)
    return list(dict.fromkeys(reasons))  # folders sharing a job share its reason


def readiness(
    *, stopping: bool, targets: TargetRegistry, intakes: Mapping[str, FolderIntake]
) -> Readiness:
    """Ready when batches can flow now: APIs answer, every target usable, folders watched."""
    reasons = ["shutting down"] if stopping else []
    reasons += _target_reasons(targets)
    folders: dict[str, Any] = {}
    for label, intake in intakes.items():
        h = intake.health
        folders[label] = {
            "mode": h.mode,
            "reason": h.reason,
            "first_scan_done": h.first_scan_done,
            "blocked": h.blocked,
            "notices": list(intake.notices),
        }
        if h.mode == "down":
            reasons.append(f"folder {label!r} is down: {h.reason}")
        elif not h.first_scan_done:
            reasons.append(f"folder {label!r}: first scan not finished")
        if h.blocked:
            reasons.append(f"folder {label!r}: {h.blocked}")
    details = {"folders": folders, "jobs": jobs_json(targets)}
    return Readiness(not reasons, tuple(reasons), details)


def with_ownership(verdict: Readiness, ownership: FolderOwnership, labels: list[str]) -> Readiness:
    """Readiness with the folder leases: a standby is ready; leases it cannot renew are not."""
    reasons = list(verdict.reasons)
    if ownership.problem:
        reasons.append(f"ledger: {ownership.problem}")
    acting = ownership.acting_on()
    details = dict(verdict.details)
    folders = dict(details.get("folders") or {})  # type: ignore[call-overload]
    for label in labels:
        if label not in acting:
            folders[label] = {"mode": "standby", "reason": "another daemon holds its lease",
                              "first_scan_done": False, "blocked": ""}  # fmt: skip
    details["folders"] = folders
    details["leases"] = {
        "members": ownership.members,
        "owned": sorted(acting),
        "standby": sorted(set(labels) - acting),
    }
    return Readiness(not reasons, tuple(reasons), details)


async def with_fleet(
    data: dict[str, Any], ledger: LedgerStore, ownership: FolderOwnership
) -> dict[str, Any]:
    """``/status`` with every daemon on the ledger and each folder's owner."""
    try:
        fleet = await ledger.fleet()
    except LedgerError as exc:
        data["fleet"] = {"shared": True, "error": str(exc)}
        return data
    data["fleet"] = status.fleet_json(fleet, me=ledger.member.token)
    data["fleet"]["owned_here"] = sorted(ownership.acting_on())
    return data


async def refresh_fleet_gauges(ledger: LedgerStore) -> None:
    """The fleet as the ledger sees it, for /metrics (no-op on a one-host ledger)."""
    try:
        fleet = await ledger.fleet()
    except LedgerError:
        return
    if not fleet.shared:
        return
    metrics.FOLDER_OWNER.clear()
    for owner in fleet.owners:
        if owner.expires_in_s > 0:
            metrics.FOLDER_OWNER.labels(owner.folder, owner.host, str(owner.pid)).set(1)
    metrics.FLEET_HEARTBEAT_AGE.clear()
    for m in fleet.members:
        if m.alive:
            labels = (m.host, str(m.pid), m.version)
            metrics.FLEET_HEARTBEAT_AGE.labels(*labels).set(m.heartbeat_age_s)


async def status_json(
    ledger: LedgerStore, targets: TargetRegistry, verdict: Readiness
) -> dict[str, Any]:
    """The ledger snapshot (as ``jetwatch status --json``) plus what only the daemon knows."""
    try:
        data = status.to_json(await ledger.snapshot(time.time()))
    except LedgerError as exc:  # the database went away: the daemon still answers
        data = {"ledger": {"error": str(exc)}}
    data["ready"] = verdict.ready
    data["reasons"] = list(verdict.reasons)
    data["api"] = api_json(targets)
    data["jobs"] = jobs_json(targets)
    data["watch"] = verdict.details["folders"]
    return data


async def state_totals(ledger: LedgerStore) -> dict[str, int]:
    """Files by state over every folder."""
    totals: dict[str, int] = {}
    for per_state in (await ledger.counts()).values():
        for state, n in per_state.items():
            totals[state] = totals.get(state, 0) + n
    return totals


def status_line(targets: TargetRegistry, totals: Mapping[str, int]) -> str:
    """One line for ``systemctl status``: API, paused targets, files by state."""
    parts = ["api ok" if targets.api_ok else "api down"]
    paused = list(dict.fromkeys(s.ref for s in targets.all_status() if s.paused))
    if paused:
        parts.append(f"paused: {', '.join(paused)}")
    counts = " ".join(f"{k.lower()}={v}" for k, v in sorted(totals.items()) if v)
    return "; ".join([*parts, counts] if counts else parts)


async def refresh_gauges(
    ledger: LedgerStore, labels: list[str], intakes: Mapping[str, FolderIntake]
) -> None:
    """Gauges read on demand, when /metrics is scraped."""
    metrics.LEDGER_BYTES.set(await ledger.size_bytes())
    held: dict[str, int] = dict.fromkeys(labels, 0)
    for batch in await ledger.held_batches():
        held[batch.folder] = held.get(batch.folder, 0) + 1
    for label, n in held.items():
        metrics.BATCHES_HELD.labels(label).set(n)
    for label, intake in intakes.items():
        age_s = intake.oldest_pending_age_s()
        metrics.OLDEST_PENDING_SECONDS.labels(label).set(age_s or 0.0)
