"""Async Integration Manager client (seed 003): job configs and job runs as typed coroutines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, Unpack

import structlog
from pydantic import BaseModel, SecretStr, ValidationError
from yarl import URL

from jetwatch.apis.exchange import ApiClient, Call, ClientOptions, client_parts
from jetwatch.apis.im.models import JobConfig, JobRun, list_items
from jetwatch.apis.im.transport import ImTransport
from jetwatch.apis.pages import parse_page
from jetwatch.errors import ApiError, PausedError, ProtocolError, RejectedError

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)

CONFIG_ROUTE = "/api/jobconfigs/{id}"
RUNS_ROUTE = "/api/jobconfigs/{id}/jobs"
RUN_ROUTE = "/api/jobs/{id}"
MAX_PAGES = 1000
PAGE_LIMIT = 100


class IntegrationManagerClient(ApiClient):
    """The Integration Manager API as coroutines returning models or raising the ApiError tree.

    Logging in, renewing and the retry rules live in :mod:`jetwatch.targets.im_transport`.
    ``max_retries`` counts retries after the first attempt; ``sleep``, ``clock`` (monotonic
    seconds) and ``rand`` (uniform [0, 1)) are injectable so tests never wait for a backoff.
    """

    _transport: ImTransport

    def __init__(
        self,
        base_url: str,
        username: str,
        password: SecretStr,
        **options: Unpack[ClientOptions],
    ) -> None:
        settings, seams = client_parts(options, token_margin_s=300.0)
        self._transport = ImTransport(base_url, username, password, settings, seams)

    def __repr__(self) -> str:
        base, user = str(self._transport.base), self._transport.username
        return f"IntegrationManagerClient(base_url={base!r}, username={user!r})"

    async def get_job_config(self, config_id: str) -> JobConfig:
        """One job config, including its ``active`` flag."""
        call = Call("GET", CONFIG_ROUTE, self._transport.url("api", "jobconfigs", config_id))
        return _parse(JobConfig, await self._transport.json(call))

    async def run_job_config(
        self, config_id: str, variables: Mapping[str, str], *, body_key: str = "variables"
    ) -> JobRun:
        """Start one run of a job config with ``{body_key: variables}``, sent at most once.

        Raises OutcomeUnknownError when the request may have reached the server without
        an answer, PausedError when the job config is not active.
        """
        url = self._transport.url("api", "jobconfigs", config_id, "jobs")
        call = Call("POST", RUNS_ROUTE, url, body={body_key: dict(variables)}, idempotent=False)
        try:
            answer = await self._transport.json(call)
        except RejectedError as exc:
            if type(exc) is not RejectedError or exc.status != 400:
                raise
            raise await self._explain_bad_request(config_id, exc) from exc
        run = _parse(JobRun, answer)
        log.info("im_run_created", job_config=config_id, run_id=run.id, status=run.status)
        return run

    async def get_job(self, run_id: str) -> JobRun:
        """One job run with its status (``GET /api/jobs/{id}``)."""
        call = Call("GET", RUN_ROUTE, self._transport.url("api", "jobs", run_id))
        return _parse(JobRun, await self._transport.json(call))

    async def list_job_runs(self, config_id: str, *, limit: int | None = None) -> list[JobRun]:
        """Runs of a job config in the server's order, at most ``limit``.

        Assumed call (not in the seed): ``GET /api/jobconfigs/{id}/jobs`` lists the runs,
        as an array or ``{"items": [...]}`` paged by offset/limit/totalResultCount or a
        ``next`` link.
        """
        page_url = self._transport.url("api", "jobconfigs", config_id, "jobs")
        params: dict[str, str] | None = {"offset": "0", "limit": str(PAGE_LIMIT)}
        runs: list[JobRun] = []
        for _ in range(MAX_PAGES):
            body = await self._transport.json(Call("GET", RUNS_ROUTE, page_url, params))
            items = list_items(body)
            runs.extend(_parse(JobRun, item) for item in items)
            if limit is not None and len(runs) >= limit:
                return runs[:limit]
            next_page = self._next_page(page_url, body, items)
            if next_page is None:
                return runs
            page_url, params = next_page
        raise ProtocolError(f"GET {RUNS_ROUTE}: more than {MAX_PAGES} pages")

    def _next_page(
        self, page_url: URL, body: Any, items: list[Any]
    ) -> tuple[URL, dict[str, str] | None] | None:
        if not items or not isinstance(body, dict) or not isinstance(body.get("items"), list):
            return None
        page = parse_page(body)
        if page.next_link is not None:
            return self._transport.follow(page_url, page.next_link, RUNS_ROUTE), None
        if page.next_offset is not None:
            limit = str(page.limit or PAGE_LIMIT)
            return page_url, {"offset": str(page.next_offset), "limit": limit}
        return None

    async def _explain_bad_request(self, config_id: str, exc: RejectedError) -> RejectedError:
        """A 400 on a run POST: PausedError if the job config is inactive, else ``exc``."""
        try:
            inactive = not (await self.get_job_config(config_id)).active
        except ApiError:
            # The config cannot be read now; the 400 body is the only hint left.
            inactive = "active" in exc.body.lower()
        if not inactive:
            return exc
        return PausedError(
            f"job config {config_id} is not active", status=exc.status, body=exc.body
        )


def _parse(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError(
            f"unexpected {model.__name__} shape ({exc.error_count()} problems)"
        ) from exc
