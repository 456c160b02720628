"""Which Jet job a folder names (id or exact name), and whether jetwatch can deliver to it.

Used by :class:`~jetwatch.targets.jet.JetTarget` (the daemon) and ``check --online``.
"""

from __future__ import annotations

from collections.abc import Iterable

from jetwatch.apis.jet.models import Job


def match_job(ref: str, jobs: Iterable[Job]) -> tuple[Job | None, str]:
    """Pick the job a folder names by id, else by exact name; the string says why not."""
    candidates = list(jobs)
    for job in candidates:
        if job.job_id == ref:
            return job, ""
    named = [job for job in candidates if job.name == ref]
    if not named:
        return None, f"no job with id or name {ref!r}"
    if len(named) > 1:
        ids = ", ".join(job.job_id for job in named)
        return None, f"job name {ref!r} is ambiguous ({ids}): use the job id"
    return named[0], ""


def job_problem(job: Job) -> str:
    """Why a resolved job cannot take deliveries from jetwatch ("" when it can)."""
    if not job.is_manual:
        return "job has a HOT_FOLDER trigger: jetwatch needs a manual job"
    return ""
