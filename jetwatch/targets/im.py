"""``IntegrationManagerTarget``: each batch is one run of a preconfigured job config (seed 003).

The batch's files reach the run as job variables rendered from a template (see
:mod:`jetwatch.targets.im_variables` for the choice and its default). The handle is the
run id. Statuses: QUEUED is in the seed; RUNNING, FINISHED, FAILED and CANCELLED are
assumed; anything else is not terminal and runs into ``run_timeout_s``. A FINISHED run
accounts for every file (an IM run has no per-file counts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import structlog
from pydantic import SecretStr

from jetwatch.apis.im.client import IntegrationManagerClient
from jetwatch.apis.im.models import JobRun, RunStatus
from jetwatch.config.targets import (
    DEFAULT_VARIABLES,
    IntegrationManagerSettings,
    VariableSource,
    template_problem,
)
from jetwatch.domain.target import Lookup, Progress, SubmitObject, TargetStatus
from jetwatch.errors import ForbiddenError, NotFoundError
from jetwatch.targets.im_variables import render_variables

log = structlog.get_logger(__name__)

IN_DOUBT_LOOKBACK = 200  # runs of the job config examined to resolve an in-doubt batch
_KNOWN = frozenset(RunStatus)


def client_from_settings(
    settings: IntegrationManagerSettings, password: SecretStr
) -> IntegrationManagerClient:
    """The client the ``[integration_manager]`` section describes (one per process)."""
    return IntegrationManagerClient(
        settings.base_url,
        settings.username,
        password,
        request_timeout_s=settings.request_timeout_seconds,
        connect_timeout_s=settings.connect_timeout_seconds,
        max_retries=settings.max_retries,
        rate_limit_per_s=settings.rate_limit_per_second,
        token_margin_s=settings.token_margin_seconds,
        proxy=settings.proxy,
        ca_file=settings.ca_file,
    )


def judge_run(run: JobRun, objects: int, age_s: float, timeout_s: float) -> Progress:
    """Pure: FINISHED is success for every file; FAILED and CANCELLED fail the batch."""
    state = str(run.status or "")
    if run.status == RunStatus.FINISHED:
        return Progress(True, False, state, transferred=objects)
    if run.status in (RunStatus.FAILED, RunStatus.CANCELLED):
        detail = f"run {run.id} {state.lower()}"
        if run.error_message:
            detail = f"{detail}: {run.error_message}"
        return Progress(True, True, state, failed_count=objects, detail=detail)
    if age_s > timeout_s:
        detail = f"run {run.id}: no terminal status after {timeout_s:.0f} s (status {state})"
        return Progress(True, True, state, failed_count=objects, detail=detail)
    return Progress(False, False, state)


class IntegrationManagerTarget:
    """Runs one job config per batch; the target owns its client unless told otherwise."""

    kind = "integration-manager"

    def __init__(
        self,
        client: IntegrationManagerClient,
        job_config: str,
        *,
        variables: Mapping[str, VariableSource] = DEFAULT_VARIABLES,
        variables_key: str = "variables",
        run_timeout_s: float = 86400.0,
        close_client: bool = True,
    ) -> None:
        problem = template_problem(variables)
        if problem:
            raise ValueError(f"variables template: {problem}")
        self._client = client
        self._config_id = job_config
        self._template = dict(variables)
        self._variables_key = variables_key
        self._timeout_s = run_timeout_s
        self._close_client = close_client
        self._unknown_seen: set[str] = set()

    @classmethod
    def from_settings(
        cls,
        settings: IntegrationManagerSettings,
        client: IntegrationManagerClient,
        *,
        job_config: str | None = None,
        close_client: bool = True,
    ) -> IntegrationManagerTarget:
        """A target of the ``[integration_manager]`` section (``job_config`` overrides its own)."""
        config_id = job_config or settings.job_config
        if not config_id:
            raise ValueError("no job config: set [integration_manager] job_config or a folder job")
        return cls(
            client,
            config_id,
            variables=settings.variables,
            variables_key=settings.variables_key,
            run_timeout_s=settings.run_timeout_seconds,
            close_client=close_client,
        )

    def __repr__(self) -> str:
        return f"IntegrationManagerTarget(job_config={self._config_id!r})"

    def variables_of(self, objects: Sequence[SubmitObject]) -> dict[str, str]:
        """The job variables a batch is sent with."""
        return render_variables(self._template, objects)

    async def check(self) -> TargetStatus:
        """The job config exists and is active (inactive reads as paused)."""
        try:
            config = await self._client.get_job_config(self._config_id)
        except NotFoundError:
            return TargetStatus(False, problem=f"job config {self._config_id!r} not found")
        except ForbiddenError as exc:
            return TargetStatus(False, problem=f"forbidden (403): {exc.body or exc}")
        return TargetStatus(config.active, not config.active, "", config.id)

    async def submit(self, objects: Sequence[SubmitObject], *, ident: str | None = None) -> str:
        """POST one run with the batch's variables; the handle is the run id."""
        run = await self._client.run_job_config(
            ident or self._config_id, self.variables_of(objects), body_key=self._variables_key
        )
        return run.id

    async def poll(
        self, handle: str, objects: int, age_s: float, *, ident: str | None = None
    ) -> Progress:
        """GET the run and judge its status (run ids are global: ``ident`` is not needed)."""
        run = await self._client.get_job(handle)
        if run.status not in _KNOWN and handle not in self._unknown_seen:
            self._unknown_seen.add(handle)  # once per run: it is polled many times
            log.warning("im_run_status_unknown", run_id=handle, status=run.status)
        progress = judge_run(run, objects, age_s, self._timeout_s)
        if progress.done:
            self._unknown_seen.discard(handle)
        return progress

    async def find_submission(
        self,
        objects: Sequence[SubmitObject],
        known_handles: set[str],
        *,
        ident: str | None = None,
        since: float | None = None,
    ) -> Lookup:
        """A run of the job config, not yet known, carrying exactly this batch's variables;
        none there is taken as proof that the POST did not arrive.

        Assumes the run listing (or, failing that, the run itself) shows the variables it
        was started with; the ``batch`` token makes two batches' variables differ.
        """
        found = await self._find_run(objects, known_handles, ident)
        return Lookup.not_received() if found is None else Lookup.found(found)

    async def is_moving(self, handle: str, *, ident: str | None = None) -> bool:
        return True  # stalls are not detected for runs (their status is the whole story)

    async def _find_run(
        self, objects: Sequence[SubmitObject], known_handles: set[str], ident: str | None
    ) -> str | None:
        config_id = ident or self._config_id
        wanted = self.variables_of(objects)
        runs = await self._client.list_job_runs(config_id, limit=IN_DOUBT_LOOKBACK)
        for run in runs:
            if run.id in known_handles:
                continue
            variables = run.variables
            if variables is None:  # the listing may be a summary: read the run itself
                try:
                    variables = (await self._client.get_job(run.id)).variables
                except NotFoundError:
                    continue
            if variables is not None and all(variables.get(k) == v for k, v in wanted.items()):
                log.info("im_submission_found", job_config=config_id, run_id=run.id)
                return run.id
        return None

    async def aclose(self) -> None:
        if self._close_client:
            await self._client.close()
