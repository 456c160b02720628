"""Job registry: resolves each folder's ``job`` (id or exact name) and watches paused state.

Resolution needs the API, which may be down at start-up: the daemon keeps watching and
queuing meanwhile, and this registry retries with backoff. A job that is paused, missing,
forbidden or not manual makes its folder's batches HELD; the registry re-checks every
``job_recheck_seconds`` and releases them by itself.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog

from jetwatch.errors import (
    JetAuthError,
    JetError,
    JetForbiddenError,
    JetNotFoundError,
    JetProtocolError,
    JetRejectedError,
    JetTransportError,
)
from jetwatch.jet.client import JetClient
from jetwatch.jet.models import Job
from jetwatch.wakeup import sleep_or_wake

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class JobStatus:
    """What the daemon knows about one configured job reference."""

    ref: str
    job_id: str | None = None
    name: str = ""
    paused: bool = False
    problem: str = ""  # why batches cannot be sent now ("" when they can)
    checked_at: float = 0.0

    @property
    def usable(self) -> bool:
        return self.job_id is not None and not self.paused and not self.problem


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


class JobRegistry:
    """Resolves and re-checks jobs; the deliver loop asks it before every POST."""

    def __init__(
        self,
        client: JetClient,
        refs: Iterable[str],
        *,
        recheck_s: float = 30.0,
        on_change: Callable[[JobStatus], None] | None = None,
    ) -> None:
        self._client = client
        self._recheck_s = recheck_s
        self._on_change = on_change
        self._status: dict[str, JobStatus] = {ref: JobStatus(ref) for ref in refs}
        self._wake = asyncio.Event()
        self.api_ok = False
        self.api_problem = "not logged in yet"

    def set_refs(self, refs: Iterable[str]) -> None:
        """Track a new set of job references (config reload); keeps known ones."""
        wanted = set(refs)
        self._status = {r: self._status.get(r, JobStatus(r)) for r in wanted}
        self._wake.set()

    def status(self, ref: str) -> JobStatus:
        return self._status.get(ref, JobStatus(ref, problem="not configured"))

    def all_status(self) -> list[JobStatus]:
        return list(self._status.values())

    def request_check(self) -> None:
        """Ask for an early re-check (a POST was refused as paused, missing or forbidden)."""
        self._wake.set()

    def note_refused(self, ref: str, problem: str, *, paused: bool = False) -> None:
        """Record what a refused POST told us, until the next check says otherwise."""
        old = self.status(ref)
        self._set(
            JobStatus(ref, old.job_id, old.name, paused, "" if paused else problem, time.time())
        )
        self._wake.set()

    @property
    def ready(self) -> bool:
        return self.api_ok and all(s.job_id is not None for s in self._status.values())

    async def run(self) -> None:
        """Check every job now, then every ``recheck_s`` (sooner when asked), forever."""
        failures = 0
        while True:
            ok = await self.check_all()
            failures = 0 if ok else failures + 1
            delay = self._recheck_s if ok else min(self._recheck_s, 2.0 * 2 ** min(failures, 5))
            self._wake.clear()
            await sleep_or_wake(self._wake, delay * random.uniform(0.9, 1.1))

    async def check_all(self) -> bool:
        """Resolve every reference once; False when the API could not be asked."""
        try:
            jobs = await self._client.list_jobs()
        except (JetTransportError, JetProtocolError) as exc:
            self._api_down(f"Jet API unreachable: {exc}")
            return False
        except JetAuthError as exc:
            self._api_down(f"Jet API refused the credentials: {exc}")
            return False
        except JetError as exc:
            self._api_down(f"listing jobs failed: {exc}")
            return False
        if not self.api_ok:
            log.info("jet_api_ok")
        self.api_ok, self.api_problem = True, ""
        now = time.time()
        for ref in list(self._status):
            await self._check_one(ref, jobs, now)
        return True

    async def _check_one(self, ref: str, jobs: list[Job], now: float) -> None:
        job, why = match_job(ref, jobs)
        if job is not None:
            job = await self._fresh(job)
        if job is None:
            self._set(JobStatus(ref, problem=why or "job not found", checked_at=now))
            return
        self._set(JobStatus(ref, job.job_id, job.name, job.paused, job_problem(job), now))

    async def _fresh(self, job: Job) -> Job | None:
        """The list may omit fields (paused, triggers): read the job itself."""
        try:
            return await self._client.get_job(job.job_id)
        except JetNotFoundError:
            return None
        except JetForbiddenError:
            return job
        except (JetRejectedError, JetTransportError, JetProtocolError):
            return job

    def _api_down(self, problem: str) -> None:
        if self.api_ok or self.api_problem != problem:
            log.warning("jet_api_unavailable", problem=problem)
        self.api_ok, self.api_problem = False, problem

    def _set(self, new: JobStatus) -> None:
        old = self._status.get(new.ref)
        self._status[new.ref] = new
        changed = old is None or (old.job_id, old.paused, old.problem) != (
            new.job_id,
            new.paused,
            new.problem,
        )
        if not changed:
            return
        if new.problem:
            log.error("job_unusable", job=new.ref, job_id=new.job_id, problem=new.problem)
        elif new.paused:
            log.warning("job_paused", job=new.ref, job_id=new.job_id)
        else:
            log.info("job_ready", job=new.ref, job_id=new.job_id, name=new.name)
        if self._on_change is not None:
            self._on_change(new)
