"""What the running daemon shows: readiness, the /status page, systemd's STATUS line, gauges."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from jetwatch import metrics, status
from jetwatch.health import Readiness
from jetwatch.intake import FolderIntake
from jetwatch.jobs import JobRegistry
from jetwatch.ledger import LedgerStore


def jobs_json(jobs: JobRegistry) -> list[dict[str, Any]]:
    return [
        {"job": j.ref, "job_id": j.job_id, "paused": j.paused, "problem": j.problem}
        for j in jobs.all_status()
    ]


def _job_reasons(jobs: JobRegistry) -> list[str]:
    problem = jobs.api_problem
    reasons = [] if jobs.api_ok else [problem if "Jet API" in problem else f"Jet API: {problem}"]
    for job in jobs.all_status():
        if job.problem or job.job_id is None:
            reasons.append(f"job {job.ref!r}: {job.problem or 'not resolved yet'}")
        elif job.paused:
            named = "" if job.ref == job.job_id else f" ({job.job_id})"
            reasons.append(f"job {job.ref!r}{named} is paused: its batches are held")
    return reasons


def readiness(
    *, stopping: bool, jobs: JobRegistry, intakes: Mapping[str, FolderIntake]
) -> Readiness:
    """Ready when deliveries can flow now: API logged in, every job usable, folders watched."""
    reasons = ["shutting down"] if stopping else []
    reasons += _job_reasons(jobs)
    folders: dict[str, Any] = {}
    for label, intake in intakes.items():
        h = intake.health
        folders[label] = {
            "mode": h.mode,
            "reason": h.reason,
            "first_scan_done": h.first_scan_done,
            "blocked": h.blocked,
        }
        if h.mode == "down":
            reasons.append(f"folder {label!r} is down: {h.reason}")
        elif not h.first_scan_done:
            reasons.append(f"folder {label!r}: first scan not finished")
        if h.blocked:
            reasons.append(f"folder {label!r}: {h.blocked}")
    return Readiness(not reasons, tuple(reasons), {"folders": folders, "jobs": jobs_json(jobs)})


def status_json(ledger: LedgerStore, jobs: JobRegistry, verdict: Readiness) -> dict[str, Any]:
    """The ledger snapshot (as ``jetwatch status --json``) plus what only the daemon knows."""
    data = status.to_json(ledger.snapshot(time.time()))
    data["ready"] = verdict.ready
    data["reasons"] = list(verdict.reasons)
    data["api"] = {"ok": jobs.api_ok, "problem": jobs.api_problem}
    data["jobs"] = jobs_json(jobs)
    data["watch"] = verdict.details["folders"]
    return data


def state_totals(ledger: LedgerStore) -> dict[str, int]:
    """Files by state over every folder."""
    totals: dict[str, int] = {}
    for per_state in ledger.counts().values():
        for state, n in per_state.items():
            totals[state] = totals.get(state, 0) + n
    return totals


def status_line(jobs: JobRegistry, totals: Mapping[str, int]) -> str:
    """One line for ``systemctl status``: API, paused jobs, files by state."""
    parts = ["api ok" if jobs.api_ok else "api down"]
    paused = [j.ref for j in jobs.all_status() if j.paused]
    if paused:
        parts.append(f"paused: {', '.join(paused)}")
    counts = " ".join(f"{k.lower()}={v}" for k, v in sorted(totals.items()) if v)
    return "; ".join([*parts, counts] if counts else parts)


def refresh_gauges(
    ledger: LedgerStore, labels: list[str], intakes: Mapping[str, FolderIntake]
) -> None:
    """Gauges read on demand, when /metrics is scraped."""
    now = time.time()
    metrics.LEDGER_BYTES.set(ledger.size_bytes())
    held: dict[str, int] = dict.fromkeys(labels, 0)
    for batch in ledger.held_batches():
        held[batch.folder] = held.get(batch.folder, 0) + 1
    for label, n in held.items():
        metrics.BATCHES_HELD.labels(label).set(n)
    for label, intake in intakes.items():
        since = intake.oldest_pending_since()
        metrics.OLDEST_PENDING_SECONDS.labels(label).set(0 if since is None else now - since)
