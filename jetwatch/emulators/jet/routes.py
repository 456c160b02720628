"""Handlers of the Jet API itself: /oauth/token and /v1/... (JET-API.md, seeds 000-002)."""

from __future__ import annotations

import base64
import binascii
import math
from urllib.parse import unquote_plus

import structlog
from aiohttp import web

from jetwatch.emulators.jet.auth import TokenStore
from jetwatch.emulators.jet.config import Assumptions
from jetwatch.emulators.jet.model import Job, JsonDict, Profile, TransferState, iso_now, new_id
from jetwatch.emulators.jet.render import (
    delivery_json,
    endpoint_json,
    in_progress_json,
    job_json,
    profile_json,
    transfer_json,
)
from jetwatch.emulators.jet.state import EmulatorState
from jetwatch.emulators.jet.transfers import TransferEngine
from jetwatch.emulators.jet.validation import (
    ErrorAnswer,
    bad_request,
    parse_job,
    parse_objects,
    parse_page,
    parse_patch,
    parse_profile,
)

log = structlog.get_logger(__name__)

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def read_json(request: web.Request) -> object:
    """The request body as JSON, whatever its Content-Type says; 400 when it is not JSON."""
    try:
        return await request.json()
    except ValueError:
        raise bad_request("body must be valid JSON") from None


async def _read_credentials(request: web.Request) -> dict[str, str]:
    """OAuth client credentials from a JSON body (seed 000), a form, or HTTP Basic auth."""
    if request.content_type in _FORM_TYPES:
        fields = {k: str(v) for k, v in (await request.post()).items()}
    else:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise bad_request("body must be a JSON object")
        fields = {k: v for k, v in body.items() if isinstance(v, str)}
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        # RFC 6749 §2.3.1: form-encoded id and secret, joined by ":" and base64-encoded.
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (ValueError, binascii.Error):
            raise ErrorAnswer(401, "invalid client credentials") from None
        client_id, _, client_secret = decoded.partition(":")
        fields.setdefault("client_id", unquote_plus(client_id))
        fields.setdefault("client_secret", unquote_plus(client_secret))
    return fields


def _oauth_error(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status)


def _with_trailing_slashes(routes: list[web.RouteDef]) -> list[web.RouteDef]:
    """Every route also with a trailing slash: Signiant's own sample app POSTs /v1/jobs/."""
    twins = [web.RouteDef(r.method, r.path + "/", r.handler, r.kwargs) for r in routes]
    return routes + twins


class JetRoutes:
    """The Jet API handlers, bound to one emulator's state, tokens and copy engine."""

    def __init__(
        self,
        state: EmulatorState,
        tokens: TokenStore,
        engine: TransferEngine,
        assume: Assumptions | None = None,
    ) -> None:
        self._state = state
        self._tokens = tokens
        self._engine = engine
        self._assume = assume or Assumptions()

    def routes(self) -> list[web.RouteDef]:
        jobs = "/v1/jobs/{jobId}"
        extra = [web.get(jobs + "/files", self.list_files)] if self._assume.job_files else []
        return _with_trailing_slashes([
            web.post("/oauth/token", self.issue_token),
            web.get("/v1/endpoints", self.list_endpoints),
            web.get("/v1/storageProfiles", self.list_profiles),
            web.post("/v1/storageProfiles", self.create_profile),
            web.get("/v1/storageProfiles/{storageProfileId}", self.get_profile),
            web.get("/v1/jobs", self.list_jobs),
            web.post("/v1/jobs", self.create_job),
            web.get(jobs, self.get_job),
            web.patch(jobs, self.patch_job),
            web.delete(jobs, self.delete_job),
            web.post(jobs + "/deliveries", self.create_delivery),
            web.get(jobs + "/deliveries/{deliveryId}", self.get_delivery),
            web.get(jobs + "/transfers", self.list_transfers),
            web.get(jobs + "/transfers/{transferId}", self.get_transfer),
            *extra,
        ])  # fmt: skip

    async def issue_token(self, request: web.Request) -> web.Response:
        fields = await _read_credentials(request)
        grant_type = fields.get("grant_type")
        if grant_type != "client_credentials":
            return _oauth_error(
                400, "unsupported_grant_type", "grant_type must be client_credentials"
            )
        token = self._tokens.issue(fields.get("client_id", ""), fields.get("client_secret", ""))
        if token is None:
            log.info("emulator_token_refused", client_id=fields.get("client_id", ""))
            return _oauth_error(401, "invalid_client", "invalid client credentials")
        return web.json_response(
            {
                "access_token": token,
                "expires_in": max(1, math.ceil(self._tokens.ttl_s)),
                "token_type": "Bearer",
            }
        )

    async def list_endpoints(self, request: web.Request) -> web.Response:
        items = [endpoint_json(e) for e in self._state.endpoints.values()]
        return web.json_response({"items": items})

    async def list_profiles(self, request: web.Request) -> web.Response:
        items = [profile_json(self._state, p) for p in self._state.profiles.values()]
        return web.json_response({"items": items})

    async def create_profile(self, request: web.Request) -> web.Response:
        new = parse_profile(await read_json(request), self._state.endpoints)
        profile = Profile(new_id(), new.name, new.endpoint_id, new.url, iso_now(), new.extra)
        self._state.profiles[profile.profile_id] = profile
        self._state.mark_dirty()
        log.info("emulator_profile_created", storage_profile_id=profile.profile_id)
        return web.json_response(profile_json(self._state, profile))

    async def get_profile(self, request: web.Request) -> web.Response:
        profile = self._state.profiles.get(request.match_info["storageProfileId"])
        if profile is None:
            raise ErrorAnswer(404, "storage profile not found")
        return web.json_response(profile_json(self._state, profile))

    async def list_jobs(self, request: web.Request) -> web.Response:
        offset, limit = parse_page(request.query)
        jobs = list(self._state.jobs.values())
        page = [job_json(self._state, j, self._assume) for j in jobs[offset : offset + limit]]
        return web.json_response(
            {"items": page, "offset": offset, "limit": limit, "totalResultCount": len(jobs)}
        )

    async def create_job(self, request: web.Request) -> web.Response:
        new = parse_job(await read_json(request), self._state.profiles)
        now = iso_now()
        job = Job(
            job_id=new_id(),
            name=new.name,
            source_profile_id=new.source_profile_id,
            dest_profile_id=new.dest_profile_id,
            actions=new.actions,
            triggers=new.triggers,
            created_on=now,
            last_modified_on=now,
            paused=new.paused,
            extra=new.extra,
            options=new.options,
        )
        self._state.jobs[job.job_id] = job
        self._state.mark_dirty()
        log.info("emulator_job_created", job_id=job.job_id, trigger_types=job.trigger_types)
        return web.json_response(job_json(self._state, job, self._assume))

    def _job(self, request: web.Request) -> Job:
        job = self._state.jobs.get(request.match_info["jobId"])
        if job is None:
            raise ErrorAnswer(404, "job not found")
        return job

    async def get_job(self, request: web.Request) -> web.Response:
        return web.json_response(job_json(self._state, self._job(request), self._assume))

    async def patch_job(self, request: web.Request) -> web.Response:
        job = self._job(request)
        patch = parse_patch(await read_json(request))
        if patch.options is not None:
            job.options = {**job.options, **patch.options}
        if patch.transfer_options is not None:
            data = job.actions[0].setdefault("data", {})
            data["transferOptions"] = {**job.transfer_options, **patch.transfer_options}
        job.last_modified_on = iso_now()
        if patch.paused is not None and patch.paused != job.paused:
            job.paused = patch.paused
            event = "emulator_job_paused" if job.paused else "emulator_job_resumed"
            log.info(event, job_id=job.job_id)
            if job.paused:
                self._engine.pause_job(job)
        self._state.mark_dirty()
        return web.json_response(job_json(self._state, job, self._assume))

    async def delete_job(self, request: web.Request) -> web.Response:
        job = self._job(request)
        # Its deliveries stay listed under /_emulator/deliveries; running copies finish.
        del self._state.jobs[job.job_id]
        self._state.mark_dirty()
        log.info("emulator_job_deleted", job_id=job.job_id)
        return web.Response(status=204)

    async def create_delivery(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job.paused:  # seeds 001/002: a paused job answers 400
            raise bad_request("job is paused")
        if not job.is_manual:  # assumed: hot folder jobs start from their folder only
            raise bad_request("deliveries can only be created for manual jobs")
        objects = parse_objects(await read_json(request))
        delivery = self._engine.submit(job, objects)
        log.info(
            "emulator_delivery_created",
            job_id=job.job_id,
            delivery_id=delivery.delivery_id,
            objects=len(objects),
        )
        return web.json_response(delivery_json(self._state, delivery, objects=True))

    async def get_delivery(self, request: web.Request) -> web.Response:
        delivery = self._state.delivery_of(
            request.match_info["jobId"], request.match_info["deliveryId"]
        )
        if delivery is None:
            raise ErrorAnswer(404, "delivery not found")
        objects = self._assume.delivery_objects
        return web.json_response(delivery_json(self._state, delivery, objects=objects))

    async def list_transfers(self, request: web.Request) -> web.Response:
        """JET-API.md: ``state`` is required and IN_PROGRESS its only value; an empty list
        answers 404 (third-party code treats it as "none")."""
        job = self._job(request)
        if request.query.get("state") != TransferState.IN_PROGRESS:
            raise bad_request("state is required and must be IN_PROGRESS")
        items = [
            in_progress_json(transfer)
            for delivery_id in job.delivery_ids
            for transfer_id in self._state.deliveries[delivery_id].transfer_ids
            if (transfer := self._state.transfers[transfer_id]).state is TransferState.IN_PROGRESS
        ]
        if not items:
            raise ErrorAnswer(404, "no transfers in progress")
        return web.json_response({"items": items})

    async def list_files(self, request: web.Request) -> web.Response:
        """Per-file records (--assume-job-files; JobFilesResponse of a Swagger copy)."""
        job = self._job(request)
        wanted = request.query.get("state")
        items: list[JsonDict] = [
            record
            for delivery_id in job.delivery_ids
            for transfer_id in self._state.deliveries[delivery_id].transfer_ids
            for record in self._state.transfers[transfer_id].files
            if wanted is None or record["state"] == wanted
        ]
        if not items:
            raise ErrorAnswer(404, "no files")
        return web.json_response({"items": items})

    async def get_transfer(self, request: web.Request) -> web.Response:
        transfer = self._state.transfer_of(
            request.match_info["jobId"], request.match_info["transferId"]
        )
        if transfer is None:
            raise ErrorAnswer(404, "transfer not found")
        return web.json_response(transfer_json(self._state, transfer))
