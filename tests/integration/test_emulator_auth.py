"""Emulator authentication: OAuth client credentials, bearer tokens, expiry and roles."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from jetwatch.emulators.jet import EmulatorServer
from jetwatch.emulators.jet.auth import TokenProblem, TokenRefused, TokenStore, is_allowed
from jetwatch.emulators.jet.config import ClientSpec, Role
from tests.fixtures.emulator import (
    VIEWER_ID,
    VIEWER_SECRET,
    Api,
    EmulatorFactory,
    fetch_token,
    make_manual_job,
    wait_for,
)


async def test_good_credentials_get_a_bearer_token(
    emulator: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    """POST /oauth/token with the seed's JSON body answers a Bearer token good for an hour."""
    body = {"client_id": "demo", "client_secret": "demo-secret", "grant_type": "client_credentials"}
    async with http.post(f"{emulator.url}/oauth/token", json=body) as response:
        assert response.status == 200
        data = await response.json()
    assert data["token_type"] == "Bearer"
    assert data["expires_in"] == 3600
    assert isinstance(data["access_token"], str)
    assert len(data["access_token"]) > 20


async def test_form_encoded_and_basic_credentials_are_accepted(
    emulator: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    """Form-encoded bodies and HTTP Basic client auth work, as with usual OAuth servers."""
    form = {"client_id": "demo", "client_secret": "demo-secret", "grant_type": "client_credentials"}
    async with http.post(f"{emulator.url}/oauth/token", data=form) as response:
        assert response.status == 200
    basic = {"Authorization": aiohttp.encode_basic_auth("demo", "demo-secret")}
    grant = {"grant_type": "client_credentials"}
    async with http.post(f"{emulator.url}/oauth/token", data=grant, headers=basic) as response:
        assert response.status == 200
        assert (await response.json())["access_token"]


@pytest.mark.parametrize(
    ("client_id", "secret"), [("demo", "wrong"), ("nobody", "demo-secret"), ("", "")]
)
async def test_bad_credentials_answer_401_with_message(
    emulator: EmulatorServer, http: aiohttp.ClientSession, client_id: str, secret: str
) -> None:
    """Wrong secret, unknown client or empty credentials are refused with 401 and a message."""
    body = {"client_id": client_id, "client_secret": secret, "grant_type": "client_credentials"}
    async with http.post(f"{emulator.url}/oauth/token", json=body) as response:
        assert response.status == 401
        data = await response.json()
    assert data["message"]
    assert "demo-secret" not in data["message"]


async def test_wrong_grant_type_answers_400(
    emulator: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    """Only the client_credentials grant exists."""
    body = {"client_id": "demo", "client_secret": "demo-secret", "grant_type": "password"}
    async with http.post(f"{emulator.url}/oauth/token", json=body) as response:
        assert response.status == 400
        assert (await response.json())["message"]


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer not-a-token", "Basic abc"])
async def test_v1_calls_need_a_valid_bearer_token(
    emulator: EmulatorServer, http: aiohttp.ClientSession, header: str | None
) -> None:
    """A missing, malformed or unknown token on /v1 answers 401 with a message."""
    headers = {} if header is None else {"Authorization": header}
    async with http.get(f"{emulator.url}/v1/jobs", headers=headers) as response:
        assert response.status == 401
        assert (await response.json())["message"]


async def test_token_expires_after_its_ttl(
    emulator_factory: EmulatorFactory, http: aiohttp.ClientSession
) -> None:
    """A token stops working after --token-ttl seconds; a fresh one works again."""
    server = await emulator_factory(token_ttl_s=1.0)
    api = Api(http, server.url, await fetch_token(http, server.url))
    assert (await api.call("GET", "/v1/jobs"))[0] == 200

    async def refused() -> str | None:
        status, body = await api.call("GET", "/v1/jobs")
        return body["message"] if status == 401 else None

    assert await wait_for(refused, timeout_s=5.0, interval_s=0.1) == TokenProblem.EXPIRED.value
    api.token = await fetch_token(http, server.url)
    assert (await api.call("GET", "/v1/jobs"))[0] == 200


async def test_viewer_reads_jobs_but_may_not_write(
    emulator: EmulatorServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """JET_VIEW_ONLY: 200 on GET of the jobs endpoints, 403 on writes and on other endpoints."""
    job_id, _, _ = await make_manual_job(emulator, tmp_path)
    viewer = Api(
        http, emulator.url, await fetch_token(http, emulator.url, VIEWER_ID, VIEWER_SECRET)
    )
    assert (await viewer.call("GET", "/v1/jobs"))[0] == 200
    assert (await viewer.call("GET", f"/v1/jobs/{job_id}"))[0] == 200
    # Read allowed (not 403): nothing is in progress, which this listing answers with 404.
    transfers = f"/v1/jobs/{job_id}/transfers?state=IN_PROGRESS"
    assert (await viewer.call("GET", transfers))[0] == 404
    forbidden = [
        ("POST", f"/v1/jobs/{job_id}/deliveries", {"objects": [{"relativePath": "/a"}]}),
        ("PATCH", f"/v1/jobs/{job_id}", {"paused": True}),
        ("DELETE", f"/v1/jobs/{job_id}", None),
        ("POST", "/v1/jobs", {"name": "x"}),
        ("GET", "/v1/endpoints", None),
        ("GET", "/v1/storageProfiles", None),
    ]
    for method, path, body in forbidden:
        status, data = await viewer.call(method, path, body)
        assert status == 403, (method, path)
        assert data["message"]
    assert "deliveries" not in (await viewer.call("GET", f"/v1/jobs/{job_id}"))[1]


def test_token_store_expiry_follows_the_clock() -> None:
    """TokenStore accepts a token until its expiry instant and refuses it from then on."""
    now = [100.0]
    store = TokenStore([ClientSpec("a", "s", Role.JET_VIEW_ONLY)], 10.0, clock=lambda: now[0])
    token = store.issue("a", "s")
    assert token is not None
    assert store.check(f"Bearer {token}").role is Role.JET_VIEW_ONLY
    now[0] = 110.0
    with pytest.raises(TokenRefused) as refused:
        store.check(f"Bearer {token}")
    assert refused.value.problem is TokenProblem.EXPIRED
    assert store.issue("a", "wrong") is None


def test_role_permissions() -> None:
    """Only S2S_ADMIN writes; JET_VIEW_ONLY reads /v1/jobs and below."""
    assert is_allowed(Role.S2S_ADMIN, "DELETE", "/v1/jobs/x")
    assert is_allowed(Role.JET_VIEW_ONLY, "GET", "/v1/jobs/x/deliveries/y")
    assert not is_allowed(Role.JET_VIEW_ONLY, "GET", "/v1/jobsx")
    assert not is_allowed(Role.JET_VIEW_ONLY, "POST", "/v1/jobs")
