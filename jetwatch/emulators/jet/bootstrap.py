"""Creates two storage profiles and a manual job through the public API (seeds 000-002)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import aiohttp

from jetwatch.errors import (
    AuthError,
    ForbiddenError,
    ProtocolError,
    RejectedError,
    TransportError,
)

_REFUSALS: dict[int, type[RejectedError]] = {401: AuthError, 403: ForbiddenError}
_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10, sock_connect=10, sock_read=30)


async def _call(
    session: aiohttp.ClientSession, method: str, url: str, *, token: str | None, body: Any = None
) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        async with session.request(method, url, json=body, headers=headers) as response:
            text = await response.text()
            if response.status in _REFUSALS:
                raise _REFUSALS[response.status](
                    f"{method} {url} refused", status=response.status, body=text[:500]
                )
            if response.status >= 400:
                raise RejectedError(
                    f"{method} {url} answered {response.status}",
                    status=response.status,
                    body=text[:500],
                )
            data = await response.json(content_type=None)
    except aiohttp.ClientError as exc:
        raise TransportError(f"{method} {url} failed: {exc}") from exc
    except ValueError as exc:
        raise ProtocolError(f"{method} {url} did not answer JSON") from exc
    if not isinstance(data, dict):
        raise ProtocolError(f"{method} {url} did not answer a JSON object")
    return data


def _field(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ProtocolError(f"answer has no {key}")
    return value


async def _token(
    session: aiohttp.ClientSession, base: str, client_id: str, client_secret: str
) -> str:
    credentials = {
        "client_id": client_id,
        "client_secret": client_secret,
        "grant_type": "client_credentials",
    }
    body = await _call(session, "POST", f"{base}/oauth/token", token=None, body=credentials)
    return _field(body, "access_token")


async def _endpoint_id(session: aiohttp.ClientSession, base: str, token: str) -> str:
    endpoints = (await _call(session, "GET", f"{base}/v1/endpoints", token=token)).get("items")
    if not isinstance(endpoints, list) or not endpoints or not isinstance(endpoints[0], dict):
        raise ProtocolError("GET /v1/endpoints listed no endpoint")
    return _field(endpoints[0], "endpointId")


def _manual_job_body(name: str, source_id: str, dest_id: str) -> dict[str, Any]:
    """Seed 002's manual job: one TRANSFER action and no triggers."""
    data = {
        "source": {"storageProfileId": source_id},
        "destination": {"storageProfileId": dest_id},
    }
    return {"name": name, "actions": [{"type": "TRANSFER", "data": data}]}


async def bootstrap_manual_job(
    base_url: str,
    client_id: str,
    client_secret: str,
    source_dir: Path,
    dest_dir: Path,
    name: str = "Manual Job",
    *,
    ca_file: Path | None = None,
) -> str:
    """Make a source and a destination profile and a manual job between them; return its id.

    ``ca_file`` is trusted besides the system CAs (an emulator serving HTTPS with a
    private CA)."""
    base = base_url.rstrip("/")
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    connector = aiohttp.TCPConnector(ssl=context)
    async with aiohttp.ClientSession(timeout=_TIMEOUT, connector=connector) as session:
        token = await _token(session, base, client_id, client_secret)
        endpoint_id = await _endpoint_id(session, base, token)
        profile_ids = []
        for role, folder in (("source", source_dir), ("destination", dest_dir)):
            body = {
                "endpointId": endpoint_id,
                "url": folder.resolve().as_uri(),
                "name": f"{name} {role}",
            }
            url = f"{base}/v1/storageProfiles"
            profile = await _call(session, "POST", url, token=token, body=body)
            profile_ids.append(_field(profile, "storageProfileId"))
        job_body = _manual_job_body(name, profile_ids[0], profile_ids[1])
        job = await _call(session, "POST", f"{base}/v1/jobs", token=token, body=job_body)
        return _field(job, "jobId")
