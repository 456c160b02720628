"""``JetTarget``: the Target protocol on top of the Jet API client (one delivery per batch).

``check`` enforces everything that makes a folder deliverable (a manual job, the folder
under the job's source profile, a growing job for a ``growing`` folder) for ``run`` and
``check --online`` alike; the in-doubt question is :mod:`jetwatch.targets.jet_lookup`'s.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import structlog

from jetwatch.apis.jet.client import JetClient
from jetwatch.apis.jet.models import Delivery, DeliveryObject, DeliveryState, Job, TransferState
from jetwatch.config.settings import FolderSettings
from jetwatch.domain.states import HoldReason
from jetwatch.domain.target import Lookup, Progress, SubmitObject, TargetStatus
from jetwatch.errors import (
    ApiError,
    ConfigError,
    ForbiddenError,
    NotFoundError,
)
from jetwatch.targets.jet_jobs import job_problem, match_job
from jetwatch.targets.jet_lookup import DeliveryLookup
from jetwatch.targets.jet_profile import FolderProblem, growing_problem, profile_problem

log = structlog.get_logger(__name__)

# What a refused (403) client must change; the view-only role may read jobs only.
FORBIDDEN_FIX = "this client's role cannot create deliveries: use an S2S_ADMIN client"

MAX_ERROR_TRANSFERS = 5  # transfers whose error messages make up a failure's detail
_KNOWN = frozenset(DeliveryState)


def relative_path(profile_root: Path | str, local_path: Path | str) -> str:
    """``relativePath`` of a local file: relative to the source profile root, leading '/'."""
    # String operations, not Path.relative_to: this runs once per file of every batch.
    root = os.path.normpath(profile_root).rstrip("/")
    path = os.path.normpath(local_path)
    if path == root or (not root and path == "/"):
        return "/"
    if not path.startswith(root + "/"):
        raise ConfigError(
            [("profile_root", f"{local_path} is not under the profile root {profile_root}")]
        )
    return path[len(root) :]


def judge_delivery(delivery: Delivery, objects: int, age_s: float, timeout_s: float) -> Progress:
    """Pure: success only when transferred + skipped accounts for every object, none failed.

    Unknown states are not terminal; a delivery older than ``timeout_s`` without a terminal
    state is given up as failed.
    """
    summary = delivery.summary
    state = str(delivery.state or "")

    def progress(done: bool, failed: bool, detail: str = "") -> Progress:
        return Progress(
            done,
            failed,
            state,
            transferred=summary.transferred.count,
            skipped=summary.skipped.count,
            failed_count=summary.failed.count,
            bytes_done=summary.transferred.size_bytes,
            detail=detail,
            bytes_skipped=summary.skipped.size_bytes,
            marks=(delivery.last_modified_on, delivery.last_event_time),
        )

    if delivery.state == DeliveryState.COMPLETED:
        if summary.failed.count > 0:
            return progress(True, True, f"{summary.failed.count} of {objects} objects failed")
        if summary.transferred.count + summary.skipped.count >= objects:
            return progress(True, False)
        return progress(True, True, "completed without accounting for every object")
    if delivery.state == DeliveryState.FAILED:
        return progress(True, True, f"delivery failed ({summary.failed.count} objects failed)")
    if age_s > timeout_s:
        return progress(
            True, True, f"no terminal state after {timeout_s:.0f} s (state {state or 'none'})"
        )
    return progress(False, False)


class JetTarget:
    """Delivers batches to one manual Jet job; handles are bare delivery ids.

    ``job`` is a job id or an exact job name, resolved by :meth:`check` (or the first
    :meth:`submit`). Handles do not carry the job id, so they stay compatible with the
    delivery ids the ledger already holds; they are polled on the currently resolved job.
    ``folder`` (the daemon and ``check`` give it) turns on the profile and growing checks.
    """

    kind = "jet"

    def __init__(
        self,
        client: JetClient,
        job: str,
        profile_root: Path,
        *,
        folder: FolderSettings | None = None,
        delivery_timeout_s: float = 86400.0,
        in_doubt_grace_s: float = 10.0,
        in_doubt_max_wait_s: float = 3600.0,
        close_client: bool = True,
    ) -> None:
        self._client = client
        self._job_ref = job
        self._profile_root = profile_root
        self._folder = folder
        self._timeout_s = delivery_timeout_s
        self._close_client = close_client
        self._job_id: str | None = None
        self._unknown_seen: set[str] = set()
        self._lookup = DeliveryLookup(
            client, grace_s=in_doubt_grace_s, max_wait_s=in_doubt_max_wait_s
        )
        # Growing folders name no size: the file grows after it is handed over.
        self._sizes = folder is None or not folder.growing

    @property
    def client(self) -> JetClient:
        """The Jet client this target delivers through."""
        return self._client

    def __repr__(self) -> str:
        return f"JetTarget(job={self._job_ref!r}, profile_root={str(self._profile_root)!r})"

    async def check(self) -> TargetStatus:
        """Resolve the job (id, else unique name); report not manual, a folder its job
        cannot deliver from (outside the profile, growing without a growing job), paused."""
        try:
            job = await self._resolve()
        except ForbiddenError:
            why = f"forbidden (403) to read jobs: {FORBIDDEN_FIX}"
            return TargetStatus(False, problem=why, hold=HoldReason.FORBIDDEN)
        if isinstance(job, str):
            return TargetStatus(False, problem=job)
        problem = job_problem(job)
        if problem:
            return TargetStatus(False, job.paused, problem, job.job_id)
        try:
            found = await self._folder_problem(job)
        except ForbiddenError:
            # The answer's body is in the request_rejected log line; people need the fix.
            why = f"forbidden (403) to read storage profiles: {FORBIDDEN_FIX}"
            return TargetStatus(False, job.paused, why, job.job_id, HoldReason.FORBIDDEN)
        if found is not None:
            return TargetStatus(False, job.paused, found.problem, job.job_id, found.hold, found.key)
        return TargetStatus(not job.paused, job.paused, "", job.job_id)

    async def _folder_problem(self, job: Job) -> FolderProblem | None:
        if self._folder is None:
            return None
        profiles = await self._client.list_storage_profiles()
        outside = await asyncio.to_thread(profile_problem, self._folder, job, profiles)
        return outside or growing_problem(self._folder, job)

    async def submit(self, objects: Sequence[SubmitObject], *, ident: str | None = None) -> str:
        """POST one delivery of ``objects``; raises the client's errors (see base.py)."""
        job_id = ident or await self._job_id_or_raise()
        # One model and path per file: built off the event loop (a batch holds 1,000).
        wire = await asyncio.to_thread(self.delivery_objects, objects)
        delivery = await self._client.create_delivery(job_id, wire)
        return delivery.delivery_id

    async def poll(
        self, handle: str, objects: int, age_s: float, *, ident: str | None = None
    ) -> Progress:
        """GET the delivery; a failure's detail lists its transfers' error messages."""
        job_id = ident or await self._job_id_or_raise()
        delivery = await self._client.get_delivery(job_id, handle)
        state = delivery.state
        if state is not None and state not in _KNOWN and handle not in self._unknown_seen:
            self._unknown_seen.add(handle)  # once per delivery: it is polled many times
            log.warning("delivery_state_unknown", delivery_id=handle, state=state)
        progress = judge_delivery(delivery, objects, age_s, self._timeout_s)
        if progress.done:
            self._unknown_seen.discard(handle)
        if not (progress.done and progress.failed):
            return progress
        if await self._paused(job_id):
            # A job paused with clearBacklogOnPause drops its deliveries' work: not the files'.
            progress = replace(progress, job_paused=True)
        messages = await self._transfer_errors(job_id, delivery)
        if not messages:
            return progress
        return replace(progress, detail=f"{progress.detail}: {'; '.join(messages)}")

    async def find_submission(
        self,
        objects: Sequence[SubmitObject],
        known_handles: set[str],
        *,
        ident: str | None = None,
        since: float | None = None,
    ) -> Lookup:
        """See :mod:`jetwatch.targets.jet_lookup`; NotFoundError when the job itself is gone."""
        job_id = ident or await self._job_id_or_raise()
        wire = self.delivery_objects(objects)
        return await self._lookup.find(job_id, wire, known_handles, since)

    async def is_moving(self, handle: str, *, ident: str | None = None) -> bool:
        """One of the delivery's transfers is in progress (the listing of the job shows it)."""
        job_id = ident or await self._job_id_or_raise()
        delivery = await self._client.get_delivery(job_id, handle)
        mine = set(delivery.transfer_ids)
        listed = await self._client.list_transfers(job_id, TransferState.IN_PROGRESS)
        return any(t.transfer_id in mine for t in listed)

    async def aclose(self) -> None:
        if self._close_client:
            await self._client.close()

    def delivery_objects(self, objects: Sequence[SubmitObject]) -> list[DeliveryObject]:
        """The wire objects of a batch, paths relative to the profile root."""
        root = os.path.normpath(self._profile_root)  # once, not per file
        # model_construct: the fields are ours and already of their types (1,000 per batch).
        return [
            DeliveryObject.model_construct(
                relative_path=relative_path(root, o.local_path),
                size_in_bytes=o.size if self._sizes else None,
            )
            for o in objects
        ]

    async def _resolve(self) -> Job | str:
        """The job the reference names, read fresh; a string says why there is none."""
        job, why = match_job(self._job_ref, await self._client.list_jobs())
        if job is None:
            return why
        try:
            # The list may omit fields (paused, triggers): read the job itself.
            job = await self._client.get_job(job.job_id)
        except NotFoundError:
            return f"job {job.job_id} disappeared"
        self._job_id = job.job_id
        return job

    async def _job_id_or_raise(self) -> str:
        if self._job_id is None:
            found = await self._resolve()
            if isinstance(found, str):
                raise NotFoundError(found, status=404)
        assert self._job_id is not None
        return self._job_id

    async def _paused(self, job_id: str) -> bool:
        try:
            return (await self._client.get_job(job_id)).paused
        except ApiError:
            return False  # cannot tell: an ordinary failure (retried, Jet skips what arrived)

    async def _transfer_errors(self, job_id: str, delivery: Delivery) -> list[str]:
        """Error messages of the delivery's first transfers (the API counts, not per file)."""
        messages: list[str] = []
        for transfer_id in delivery.transfer_ids[:MAX_ERROR_TRANSFERS]:
            try:
                transfer = await self._client.get_transfer(job_id, transfer_id)
            except ApiError:
                continue  # the counts already say it failed; the detail is a courtesy
            error = transfer.error
            if error is not None and (error.message or error.reason):
                parts = [p for p in (error.message, error.reason) if p]
                messages.append(" – ".join(parts))
        return messages
