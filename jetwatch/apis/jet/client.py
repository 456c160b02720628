"""Async Jet API client: one aiohttp session, a cached token, paced retries, ApiError answers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, TypeVar, Unpack

import structlog
from pydantic import BaseModel, SecretStr, ValidationError
from yarl import URL

from jetwatch.apis.exchange import ApiClient, Call, ClientOptions, client_parts
from jetwatch.apis.jet.models import (
    Delivery,
    DeliveryObject,
    Endpoint,
    Job,
    JobFile,
    StorageProfile,
    Transfer,
    TransferState,
)
from jetwatch.apis.jet.transport import Transport
from jetwatch.apis.pages import parse_page
from jetwatch.apis.rounds import once
from jetwatch.errors import (
    ApiError,
    NotFoundError,
    PausedError,
    ProtocolError,
    RejectedError,
)

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)

# A list longer than this many pages is a server bug (a loop), not a big account.
MAX_PAGES = 1000
DELIVERIES_ROUTE = "/v1/jobs/{jobId}/deliveries"


class JetClient(ApiClient):
    """The Jet API as coroutines returning models or raising the ApiError tree.

    ``max_retries`` counts retries after the first attempt. ``sleep``, ``clock`` (monotonic
    seconds) and ``rand`` (uniform [0, 1)) are injectable so tests never wait for a backoff.
    """

    _transport: Transport

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: SecretStr,
        **options: Unpack[ClientOptions],
    ) -> None:
        settings, seams = client_parts(options, token_margin_s=60.0)
        self._transport = Transport(base_url, client_id, client_secret, settings, seams)

    def __repr__(self) -> str:
        base, client_id = str(self._transport.base), self._transport.client_id
        return f"JetClient(base_url={base!r}, client_id={client_id!r})"

    # ----- public calls -------------------------------------------------------------------

    async def list_jobs(self) -> list[Job]:
        """Every job of the account, following pages (once per round: see apis/rounds.py)."""
        url = self._transport.url("v1", "jobs")
        return await once((id(self), "jobs"), lambda: self._list("/v1/jobs", url, Job))

    async def get_job(self, job_id: str) -> Job:
        """One job, with its paused flag, options and (where an API shows them) delivery ids."""
        call = Call("GET", "/v1/jobs/{jobId}", self._transport.url("v1", "jobs", job_id))

        async def fetch() -> Job:
            return _parse(Job, await self._transport.json(call))

        return await once((id(self), "job", job_id), fetch)

    async def list_endpoints(self) -> list[Endpoint]:
        """Every endpoint of the account."""
        return await self._list("/v1/endpoints", self._transport.url("v1", "endpoints"), Endpoint)

    async def list_storage_profiles(self) -> list[StorageProfile]:
        """Every storage profile of the account."""
        url = self._transport.url("v1", "storageProfiles")

        async def fetch() -> list[StorageProfile]:
            return await self._list("/v1/storageProfiles", url, StorageProfile)

        return await once((id(self), "storageProfiles"), fetch)

    async def create_delivery(self, job_id: str, objects: Sequence[DeliveryObject]) -> Delivery:
        """Start a delivery of ``objects`` on a manual job; sent at most once (see decide_retry).

        Raises OutcomeUnknownError when the request may have reached the server without an
        answer: the caller must not send it again before the first, if it exists, can no
        longer be copying (the POST has no idempotency key; see pipeline/in_doubt.py).
        """
        # A dict per object of 1,000: dumped off the event loop.
        dumped = await asyncio.to_thread(_dump_objects, objects)
        call = Call(
            "POST",
            DELIVERIES_ROUTE,
            self._transport.url("v1", "jobs", job_id, "deliveries"),
            body={"objects": dumped},
            idempotent=False,
        )
        try:
            body = await self._transport.json(call)
        except RejectedError as exc:
            if type(exc) is not RejectedError or exc.status != 400:
                raise
            explained = await self._explain_bad_request(job_id, exc)
            if explained is exc:
                raise
            raise explained from exc
        delivery = _parse(Delivery, _without_objects(body))
        log.info(
            "delivery_created",
            job_id=job_id,
            delivery_id=delivery.delivery_id,
            objects=len(objects),
        )
        return delivery

    async def get_delivery(self, job_id: str, delivery_id: str) -> Delivery:
        """A delivery's state, counts and transfers."""
        route = "/v1/jobs/{jobId}/deliveries/{deliveryId}"
        call = Call(
            "GET", route, self._transport.url("v1", "jobs", job_id, "deliveries", delivery_id)
        )
        return _parse(Delivery, await self._transport.json(call))

    async def get_transfer(self, job_id: str, transfer_id: str) -> Transfer:
        """One transfer of a job."""
        route = "/v1/jobs/{jobId}/transfers/{transferId}"
        call = Call(
            "GET", route, self._transport.url("v1", "jobs", job_id, "transfers", transfer_id)
        )
        return _parse(Transfer, await self._transport.json(call))

    async def list_transfers(
        self, job_id: str, state: str = TransferState.IN_PROGRESS
    ) -> list[Transfer]:
        """The job's transfers in ``state``: JET-API.md says the filter is required and
        IN_PROGRESS its only value. A 404 is an empty list once GET job shows the job exists
        (NotFoundError when it does not)."""
        url = self._transport.url("v1", "jobs", job_id, "transfers")
        return await self._list_or_none(
            job_id, "/v1/jobs/{jobId}/transfers", url, Transfer, {"state": state}
        )

    async def list_job_files(self, job_id: str) -> list[JobFile]:
        """Per-file records of a job (``GET /v1/jobs/{jobId}/files``, path unconfirmed): an
        API without the endpoint, or none to show, gives an empty list."""
        url = self._transport.url("v1", "jobs", job_id, "files")
        try:
            return await self._list_or_none(job_id, "/v1/jobs/{jobId}/files", url, JobFile)
        except RejectedError as exc:
            if type(exc) is not RejectedError or exc.status not in (400, 405):
                raise
            return []

    async def _list_or_none(
        self,
        job_id: str,
        route: str,
        url: URL,
        model: type[M],
        params: dict[str, str] | None = None,
    ) -> list[M]:
        """A job's sub-list; 404 means empty (third-party code reads it so) if the job is there."""
        try:
            return await self._list(route, url, model, params)
        except NotFoundError:
            await self.get_job(job_id)  # raises NotFoundError itself when the job is gone
            return []

    # ----- helpers of the public calls ----------------------------------------------------

    async def _list(
        self, route: str, url: URL, model: type[M], params: dict[str, str] | None = None
    ) -> list[M]:
        found: list[M] = []
        page_url, page_params = url, params
        for _ in range(MAX_PAGES):
            page = parse_page(await self._transport.json(Call("GET", route, page_url, page_params)))
            found.extend(_parse(model, item) for item in page.items)
            if page.next_link is not None:
                page_url, page_params = (
                    self._transport.follow(page_url, page.next_link, route),
                    None,
                )
            elif page.next_offset is not None:
                limit = page.limit or len(page.items)
                paging = {"offset": str(page.next_offset), "limit": str(limit)}
                page_params = {**(params or {}), **paging}
            else:
                return found
        raise ProtocolError(f"GET {route}: more than {MAX_PAGES} pages")

    async def _explain_bad_request(self, job_id: str, exc: RejectedError) -> RejectedError:
        """A 400 on a delivery POST: PausedError if the job is paused, else ``exc``."""
        try:
            paused = (await self.get_job(job_id)).paused
        except ApiError:
            # The job cannot be read now; the 400 body is the only hint left.
            paused = "pause" in exc.body.lower()
        if not paused:
            return exc
        return PausedError(f"job {job_id} is paused", status=exc.status, body=exc.body)


def _parse(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError(
            f"unexpected {model.__name__} shape ({exc.error_count()} problems)"
        ) from exc


def _without_objects(body: Any) -> Any:
    """A POST answer without the objects it echoes (seed 002): 1,000 of them per batch, and
    nothing of them is used; validating them cost more than building the request."""
    if isinstance(body, dict) and "objects" in body:
        return {k: v for k, v in body.items() if k != "objects"}
    return body


def _dump_objects(objects: Sequence[DeliveryObject]) -> list[dict[str, Any]]:
    """The wire form of ``objects`` (what ``model_dump(by_alias=True, exclude_none=True)``
    gives, spelled out: this runs for every file sent)."""
    dumped: list[dict[str, Any]] = []
    for obj in objects:
        item: dict[str, Any] = {"relativePath": obj.relative_path}
        if obj.size_in_bytes is not None:
            item["sizeInBytes"] = obj.size_in_bytes
        if obj.is_directory is not None:
            item["isDirectory"] = obj.is_directory
        dumped.append(item)
    return dumped
