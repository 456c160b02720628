"""IntegrationManagerClient: login, refresh and re-login, retries, error mapping, lists.

Most tests run against the real IM emulator over HTTP; aioresponses covers answers the
emulator never gives (a missing refresh endpoint, malformed bodies, odd list shapes).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr
from yarl import URL

import jetwatch.apis.im.client as im_client_module
from jetwatch.apis.im.client import IntegrationManagerClient
from jetwatch.apis.im.models import JobRun, RunStatus
from jetwatch.emulators.im import ImEmulatorServer
from jetwatch.errors import (
    AuthError,
    NotFoundError,
    OutcomeUnknownError,
    PausedError,
    ProtocolError,
    RejectedError,
    TransportError,
)
from jetwatch.targets.im import judge_run
from tests.fixtures.aioresponses_compat import CompatAioresponses
from tests.fixtures.im_helpers import IM_PASSWORD, IM_USER, ImApi, InstantSleep

BASE = "https://im.test"
LOGIN_URL = f"{BASE}/api/login"
REFRESH_URL = f"{BASE}/api/login/refresh"
CONFIG_URL = f"{BASE}/api/jobconfigs/44"
CONFIG = {"id": "44", "active": True, "name": "sample config"}


@dataclass
class FakeClock:
    """A monotonic clock the test moves by hand."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def make_client(
    server: ImEmulatorServer,
    *,
    password: str = IM_PASSWORD,
    sleep: InstantSleep | None = None,
    clock: FakeClock | None = None,
    max_retries: int = 3,
) -> IntegrationManagerClient:
    return IntegrationManagerClient(
        server.url,
        IM_USER,
        SecretStr(password),
        sleep=sleep or InstantSleep(),
        clock=clock or FakeClock(),
        max_retries=max_retries,
        rate_limit_per_s=0,
        rand=lambda: 0.5,
    )


async def requests(api: ImApi, route: str) -> int:
    stats = await api.admin("GET", "stats")
    count: int = stats["requests"].get(route, 0)
    return count


async def test_concurrent_calls_share_one_login(im_api: ImApi, im_server: ImEmulatorServer) -> None:
    """Twenty concurrent first calls cost one login, and every one succeeds."""
    config_id = await im_api.config()
    before = await requests(im_api, "POST /api/login")
    async with make_client(im_server) as client:
        configs = await asyncio.gather(*(client.get_job_config(config_id) for _ in range(20)))
    assert {c.id for c in configs} == {config_id}
    assert await requests(im_api, "POST /api/login") == before + 1


async def test_renewal_uses_the_refresh_token(im_api: ImApi, im_server: ImEmulatorServer) -> None:
    """Near expiry the client refreshes instead of logging in again."""
    config_id = await im_api.config()
    clock = FakeClock()
    async with make_client(im_server, clock=clock) as client:
        await client.get_job_config(config_id)
        clock.now += 36000 - 299  # inside the 300 s margin before expires_in
        await client.get_job_config(config_id)
    assert await requests(im_api, "POST /api/login/refresh") == 1
    assert await requests(im_api, "POST /api/login") == 2  # the fixture's and the client's


async def test_refused_refresh_falls_back_to_login(
    im_api: ImApi, im_server: ImEmulatorServer
) -> None:
    """A refresh token the server no longer takes leads to a fresh login, not a failure."""
    config_id = await im_api.config()
    clock = FakeClock()
    async with make_client(im_server, clock=clock) as client:
        await client.get_job_config(config_id)
        await im_api.admin("POST", "tokens/expire", {"refresh": True})
        clock.now += 36000
        assert (await client.get_job_config(config_id)).id == config_id
    assert await requests(im_api, "POST /api/login/refresh") == 1
    assert await requests(im_api, "POST /api/login") == 3


async def test_401_logs_in_again_once(im_api: ImApi, im_server: ImEmulatorServer) -> None:
    """A token the server stopped taking early: one fresh login, the call then succeeds."""
    config_id = await im_api.config()
    async with make_client(im_server) as client:
        await client.get_job_config(config_id)
        await im_api.admin("POST", "tokens/expire")
        assert (await client.get_job_config(config_id)).id == config_id
    assert await requests(im_api, "POST /api/login") == 3
    assert await requests(im_api, "POST /api/login/refresh") == 0


async def test_wrong_password_is_an_auth_error_without_the_password(
    im_server: ImEmulatorServer,
) -> None:
    """Refused credentials raise AuthError naming the user, never the password."""
    async with make_client(im_server, password="hunter2-wrong") as client:
        with pytest.raises(AuthError) as caught:
            await client.get_job_config("1")
    assert IM_USER in str(caught.value)
    assert "hunter2-wrong" not in str(caught.value)
    assert "hunter2-wrong" not in caught.value.body


async def test_runs_are_created_read_and_listed_in_pages(
    im_api: ImApi, im_client: IntegrationManagerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run_job_config sends the variables; get_job and a paged list_job_runs read them back."""
    monkeypatch.setattr(im_client_module, "PAGE_LIMIT", 2)
    config_id = await im_api.config()
    runs = [await im_client.run_job_config(config_id, {"I": str(i)}) for i in range(3)]
    assert runs[0].status == RunStatus.QUEUED
    assert runs[0].variables == {"I": "0"}
    assert (await im_client.get_job(runs[0].id)).job_config is not None
    listed = await im_client.list_job_runs(config_id)
    assert [r.id for r in listed] == [r.id for r in reversed(runs)]
    assert len(await im_client.list_job_runs(config_id, limit=1)) == 1


async def test_inactive_config_is_a_paused_error(
    im_api: ImApi, im_client: IntegrationManagerClient
) -> None:
    """400 on a run of an inactive job config becomes PausedError."""
    config_id = await im_api.config(active=False)
    with pytest.raises(PausedError, match="not active"):
        await im_client.run_job_config(config_id, {})


async def test_unknown_ids_are_not_found(im_client: IntegrationManagerClient) -> None:
    """404 answers raise NotFoundError."""
    with pytest.raises(NotFoundError):
        await im_client.get_job("no-such-run")
    with pytest.raises(NotFoundError):
        await im_client.get_job_config("999")


async def test_429_is_retried_after_retry_after(im_api: ImApi, im_server: ImEmulatorServer) -> None:
    """429 with Retry-After: 1 waits exactly that long between attempts, then gives up."""
    config_id = await im_api.config()
    sleeps = InstantSleep()
    async with make_client(im_server, sleep=sleeps) as client:
        await client.get_job_config(config_id)
        await im_api.admin("POST", "faults", {"status_rates": {"429": 1}})
        with pytest.raises(TransportError) as caught:
            await client.get_job_config(config_id)
    assert sleeps.delays == [1.0, 1.0, 1.0]
    assert (caught.value.status, caught.value.retry_after_s) == (429, 1.0)


async def test_get_5xx_is_retried_but_post_5xx_is_outcome_unknown(
    im_api: ImApi, im_server: ImEmulatorServer
) -> None:
    """An idempotent GET retries a 500; the run POST never does: its outcome is unknown."""
    config_id = await im_api.config()
    sleeps = InstantSleep()
    async with make_client(im_server, sleep=sleeps) as client:
        await client.get_job_config(config_id)
        await im_api.admin("POST", "faults", {"status_rates": {"500": 1}})
        with pytest.raises(TransportError):
            await client.get_job_config(config_id)
        assert len(sleeps.delays) == 3
        with pytest.raises(OutcomeUnknownError):
            await client.run_job_config(config_id, {"A": "1"})
    assert len(sleeps.delays) == 3


async def test_503_with_retry_after_retries_the_post(
    im_api: ImApi, im_server: ImEmulatorServer
) -> None:
    """503 + Retry-After means the server said no: the POST may be sent again."""
    config_id = await im_api.config()
    sleeps = InstantSleep()
    async with make_client(im_server, sleep=sleeps) as client:
        await client.get_job_config(config_id)
        await im_api.admin("POST", "faults", {"status_rates": {"503": 1}})
        with pytest.raises(TransportError):
            await client.run_job_config(config_id, {})
    assert sleeps.delays == [1.0, 1.0, 1.0]
    assert (await im_api.admin("GET", "runs"))["items"] == []


async def test_post_dropped_after_processing_is_outcome_unknown(
    im_api: ImApi, im_server: ImEmulatorServer
) -> None:
    """A connection lost after the run was created: OutcomeUnknownError, the run exists."""
    config_id = await im_api.config()
    async with make_client(im_server) as client:
        await client.get_job_config(config_id)
        await im_api.admin("POST", "faults", {"drop_rate": 1.0, "drop_phase": "after"})
        with pytest.raises(OutcomeUnknownError):
            await client.run_job_config(config_id, {"B": "2"})
    received = (await im_api.admin("GET", "runs"))["items"]
    assert [r["variables"] for r in received] == [{"B": "2"}]


async def test_unreachable_server_is_a_transport_error() -> None:
    """Connection refused is retried, then TransportError."""
    sleeps = InstantSleep()
    client = IntegrationManagerClient(
        "http://127.0.0.1:9", IM_USER, SecretStr(IM_PASSWORD), sleep=sleeps, max_retries=2
    )
    async with client:
        with pytest.raises(TransportError):
            await client.get_job_config("1")
    assert len(sleeps.delays) == 2


# ----- edge cases the emulator never produces ---------------------------------------------


@pytest.fixture
def mock_api() -> Iterator[CompatAioresponses]:
    with CompatAioresponses() as mocked:
        yield mocked


@pytest.fixture
async def client(clock: FakeClock) -> AsyncIterator[IntegrationManagerClient]:
    made = IntegrationManagerClient(
        BASE,
        IM_USER,
        SecretStr(IM_PASSWORD),
        rate_limit_per_s=0,
        max_retries=2,
        sleep=InstantSleep(),
        clock=clock,
        rand=lambda: 0.5,
    )
    async with made:
        yield made


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def login_answer(access: str, refresh: str = "r-1", expires_in: float = 36000) -> dict[str, Any]:
    return {"access_token": access, "refresh_token": refresh, "expires_in": expires_in}


def bearers(mocked: CompatAioresponses, url: str) -> list[str]:
    calls = mocked.requests.get(("GET", URL(url)), [])
    return [str(call.kwargs["headers"]["Authorization"]) for call in calls]


async def test_missing_refresh_endpoint_turns_refreshing_off(
    mock_api: CompatAioresponses, client: IntegrationManagerClient, clock: FakeClock
) -> None:
    """404 on the assumed refresh call: log in instead, and do not try refreshing again."""
    mock_api.post(LOGIN_URL, payload=login_answer("a-1"))
    mock_api.post(REFRESH_URL, status=404, payload={"message": "no such route"})
    mock_api.post(LOGIN_URL, payload=login_answer("a-2"))
    mock_api.post(LOGIN_URL, payload=login_answer("a-3"))
    mock_api.get(CONFIG_URL, payload=CONFIG, repeat=True)
    for _ in range(3):
        await client.get_job_config("44")
        clock.now += 36000
    assert bearers(mock_api, CONFIG_URL) == ["Bearer a-1", "Bearer a-2", "Bearer a-3"]
    assert len(mock_api.requests[("POST", URL(REFRESH_URL))]) == 1


async def test_second_401_after_a_fresh_login_is_an_auth_error(
    mock_api: CompatAioresponses, client: IntegrationManagerClient
) -> None:
    """A call refused again after re-login raises AuthError instead of looping."""
    mock_api.post(LOGIN_URL, payload=login_answer("a-1"))
    mock_api.post(LOGIN_URL, payload=login_answer("a-2"))
    mock_api.get(CONFIG_URL, status=401, payload={"message": "nope"}, repeat=True)
    with pytest.raises(AuthError, match="fresh login"):
        await client.get_job_config("44")
    assert bearers(mock_api, CONFIG_URL) == ["Bearer a-1", "Bearer a-2"]


async def test_malformed_answers_are_protocol_errors(
    mock_api: CompatAioresponses, client: IntegrationManagerClient
) -> None:
    """A login answer without a token, or a body that is not JSON, is ProtocolError."""
    mock_api.post(LOGIN_URL, payload={"access_token": "", "refresh_token": "r-secret"})
    with pytest.raises(ProtocolError) as caught:
        await client.get_job_config("44")
    assert "r-secret" not in str(caught.value)
    mock_api.post(LOGIN_URL, payload=login_answer("a-1"))
    mock_api.get(CONFIG_URL, body="<html>")
    with pytest.raises(ProtocolError, match="not JSON"):
        await client.get_job_config("44")


@pytest.mark.parametrize(
    "body",
    [
        [{"id": "r1", "status": "RUNNING"}],
        {"content": [{"id": "r1", "status": "RUNNING"}]},
        {"items": [{"id": "r1", "status": "RUNNING"}], "totalResultCount": 1},
    ],
)
async def test_run_lists_in_several_shapes(
    mock_api: CompatAioresponses, client: IntegrationManagerClient, body: Any
) -> None:
    """Run lists are accepted as an array or an object holding the array."""
    mock_api.post(LOGIN_URL, payload=login_answer("a-1"))
    mock_api.get(f"{BASE}/api/jobconfigs/44/jobs?offset=0&limit=100", payload=body)
    runs = await client.list_job_runs("44")
    assert [(r.id, r.status) for r in runs] == [("r1", "RUNNING")]


async def test_error_bodies_are_redacted(
    mock_api: CompatAioresponses, client: IntegrationManagerClient
) -> None:
    """A rejection echoing the password or the token carries *** in its body instead."""
    mock_api.post(LOGIN_URL, payload=login_answer("tok-visible"))
    echo = {"message": f"bad request from {IM_PASSWORD} with tok-visible"}
    mock_api.get(CONFIG_URL, status=422, payload=echo)
    with pytest.raises(RejectedError) as caught:
        await client.get_job_config("44")
    body = caught.value.body
    assert IM_PASSWORD not in body
    assert "tok-visible" not in body
    assert body.count("***") == 2


def test_run_model_is_lenient() -> None:
    """Variables as name/value pairs, numeric ids, error objects and unknown statuses parse."""
    run = JobRun.model_validate(
        {
            "id": 7,
            "status": "PAUSED_BY_OPERATOR",
            "variables": [{"name": "A", "value": 1}, {"name": "B", "value": None}],
            "error": {"message": "disk full"},
        }
    )
    assert (run.id, run.variables, run.error_message) == ("7", {"A": "1", "B": ""}, "disk full")
    assert not judge_run(run, 1, 0.0, 60.0).done
    assert judge_run(JobRun.model_validate({"id": "x", "status": "CANCELLED"}), 1, 0.0, 60.0).done
