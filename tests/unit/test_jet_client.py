"""Edge cases of JetClient against aioresponses: tokens, retries, error mapping, lists, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from aioresponses.core import RequestCall
from pydantic import SecretStr
from structlog.testing import capture_logs
from yarl import URL

import jetwatch.apis.jet.client as client_module
from jetwatch.apis.jet.client import JetClient
from jetwatch.apis.jet.models import DeliveryObject, DeliveryState, TransferState
from jetwatch.errors import (
    AuthError,
    ForbiddenError,
    NotFoundError,
    OutcomeUnknownError,
    PausedError,
    ProtocolError,
    RejectedError,
    TransportError,
)
from jetwatch.metrics import REGISTRY
from jetwatch.targets.jet import judge_delivery
from tests.fixtures.aioresponses_compat import CompatAioresponses, callback_result

BASE = "https://jet.test"
SECRET = "s3cr3t-Value-never-shown"
TOKEN_URL = f"{BASE}/oauth/token"
JOBS_URL = f"{BASE}/v1/jobs"
JOB_URL = f"{BASE}/v1/jobs/job-1"
DELIVERIES_URL = f"{BASE}/v1/jobs/job-1/deliveries"
JOB = {"jobId": "job-1", "name": "Manual", "paused": False}
OBJECTS = [DeliveryObject(relative_path="/a.mp4", size_in_bytes=10)]
CREATED = {"objects": [{"relativePath": "/a.mp4", "sizeInBytes": 10}], "deliveryId": "del-1"}


@dataclass
class SleepRecorder:
    """A fake asyncio.sleep that records the delays and only yields to the loop."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, delay_s: float) -> None:
        self.delays.append(delay_s)
        await asyncio.sleep(0)


@dataclass
class FakeClock:
    """A monotonic clock the test moves by hand."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def mock_api() -> Iterator[CompatAioresponses]:
    with CompatAioresponses() as mocked:
        yield mocked


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(sleeps: SleepRecorder, clock: FakeClock) -> AsyncIterator[JetClient]:
    jet = JetClient(
        BASE,
        "demo",
        SecretStr(SECRET),
        rate_limit_per_s=0,
        max_retries=3,
        sleep=sleeps,
        clock=clock,
        rand=lambda: 0.5,
    )
    async with jet:
        yield jet


def add_token(mocked: CompatAioresponses, value: str = "tok-1", expires_in: float = 3600) -> None:
    payload = {"access_token": value, "expires_in": expires_in, "token_type": "Bearer"}
    mocked.post(TOKEN_URL, payload=payload)


def sent(mocked: CompatAioresponses, method: str, url: str) -> list[RequestCall]:
    return list(mocked.requests.get((method, URL(url)), []))


def bearer(call: RequestCall) -> str:
    return str(call.kwargs["headers"]["Authorization"])


def refused() -> aiohttp.ClientConnectorError:
    key = ConnectionKey("jet.test", 443, True, True, None, None, None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# ----- tokens ----------------------------------------------------------------------------


async def test_token_is_cached_and_reused(mock_api: CompatAioresponses, client: JetClient) -> None:
    """Two calls cost one token request, and both carry that token."""
    add_token(mock_api)
    mock_api.get(JOB_URL, payload=JOB, repeat=True)
    await client.get_job("job-1")
    await client.get_job("job-1")
    assert len(sent(mock_api, "POST", TOKEN_URL)) == 1
    token_call = sent(mock_api, "POST", TOKEN_URL)[0]
    assert token_call.kwargs["json"] == {
        "client_id": "demo",
        "client_secret": SECRET,
        "grant_type": "client_credentials",
    }
    assert [bearer(call) for call in sent(mock_api, "GET", JOB_URL)] == ["Bearer tok-1"] * 2


async def test_token_refreshed_before_it_expires(
    mock_api: CompatAioresponses, client: JetClient, clock: FakeClock
) -> None:
    """Once inside the margin before expiry, the next call fetches a new token first."""
    add_token(mock_api, "tok-1", expires_in=120)
    add_token(mock_api, "tok-2", expires_in=120)
    mock_api.get(JOB_URL, payload=JOB, repeat=True)
    await client.get_job("job-1")
    clock.now += 59  # margin 60 s is capped at half of 120 s: refresh at +60 s
    await client.get_job("job-1")
    clock.now += 2
    await client.get_job("job-1")
    calls = sent(mock_api, "GET", JOB_URL)
    assert [bearer(call) for call in calls] == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


async def test_token_expired_mid_flight_is_replaced_once(
    mock_api: CompatAioresponses, client: JetClient
) -> None:
    """A 401 on a cached token triggers one refresh and one retry with the new token."""
    add_token(mock_api, "tok-1")
    add_token(mock_api, "tok-2")
    mock_api.get(JOB_URL, status=401, payload={"message": "expired"})
    mock_api.get(JOB_URL, payload=JOB)
    job = await client.get_job("job-1")
    assert job.job_id == "job-1"
    assert [bearer(call) for call in sent(mock_api, "GET", JOB_URL)] == [
        "Bearer tok-1",
        "Bearer tok-2",
    ]


async def test_twenty_concurrent_calls_make_one_token_request(
    mock_api: CompatAioresponses, client: JetClient
) -> None:
    """Callers arriving during a refresh wait for it instead of starting their own."""
    token_requests = 0

    async def slow_token(url: URL, **kwargs: Any) -> Any:
        nonlocal token_requests
        token_requests += 1
        for _ in range(10):  # let every other caller reach the lock meanwhile
            await asyncio.sleep(0)
        return callback_result(payload={"access_token": "tok-1", "expires_in": 3600})

    mock_api.post(TOKEN_URL, callback=slow_token, repeat=True)
    mock_api.get(JOB_URL, payload=JOB, repeat=True)
    jobs = await asyncio.gather(*(client.get_job("job-1") for _ in range(20)))
    assert len(jobs) == 20
    assert token_requests == 1


async def test_concurrent_401s_share_one_refresh(
    mock_api: CompatAioresponses, client: JetClient
) -> None:
    """Many calls rejected with the same stale token cause a single new token request."""
    tokens = iter(["tok-old", "tok-new", "tok-extra"])
    token_requests = 0

    async def issue_token(url: URL, **kwargs: Any) -> Any:
        nonlocal token_requests
        token_requests += 1
        await asyncio.sleep(0)
        return callback_result(payload={"access_token": next(tokens), "expires_in": 3600})

    async def job_answer(url: URL, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        if kwargs["headers"]["Authorization"] == "Bearer tok-old":
            return callback_result(status=401, payload={"message": "expired"})
        return callback_result(payload=JOB)

    mock_api.post(TOKEN_URL, callback=issue_token, repeat=True)
    mock_api.get(JOB_URL, callback=job_answer, repeat=True)
    await asyncio.gather(*(client.get_job("job-1") for _ in range(10)))
    assert token_requests == 2


async def test_second_401_is_an_auth_error(mock_api: CompatAioresponses, client: JetClient) -> None:
    """A fresh token that is still refused means the credentials lost their rights."""
    add_token(mock_api, "tok-1")
    add_token(mock_api, "tok-2")
    mock_api.get(JOB_URL, status=401, payload={"message": "nope"}, repeat=True)
    with pytest.raises(AuthError) as caught:
        await client.get_job("job-1")
    assert caught.value.status == 401
    assert len(sent(mock_api, "GET", JOB_URL)) == 2


@pytest.mark.parametrize("status", [400, 401])
async def test_bad_credentials_never_reveal_the_secret(
    mock_api: CompatAioresponses, client: JetClient, status: int
) -> None:
    """Refused credentials raise AuthError; the secret is in no message, repr, body or log."""
    echo = {"message": f"invalid client_secret {SECRET}", "error": "invalid_client"}
    mock_api.post(TOKEN_URL, status=status, payload=echo)
    with capture_logs() as logs, pytest.raises(AuthError) as caught:
        await client.list_jobs()
    error = caught.value
    assert error.status == status
    assert "invalid_client" in error.body
    for text in (str(error), repr(error), error.body, repr(client), repr(logs)):
        assert SECRET not in text
    assert sent(mock_api, "GET", JOBS_URL) == []


async def test_token_answer_without_a_token_is_a_protocol_error(
    mock_api: CompatAioresponses, client: JetClient
) -> None:
    """A token answer of the wrong shape is a protocol error that does not quote the answer."""
    mock_api.post(TOKEN_URL, payload={"access_token": "", "expires_in": 10})
    with pytest.raises(ProtocolError) as caught:
        await client.list_jobs()
    assert caught.value.__cause__ is None


# ----- retries ---------------------------------------------------------------------------


async def test_429_retry_after_is_honoured(
    mock_api: CompatAioresponses, client: JetClient, sleeps: SleepRecorder
) -> None:
    """A 429 waits exactly the Retry-After seconds before the retry."""
    add_token(mock_api)
    mock_api.get(JOB_URL, status=429, headers={"Retry-After": "2"})
    mock_api.get(JOB_URL, payload=JOB)
    assert (await client.get_job("job-1")).job_id == "job-1"
    assert sleeps.delays == [2.0]


async def test_503_then_success_backs_off_with_jitter(
    mock_api: CompatAioresponses, client: JetClient, sleeps: SleepRecorder
) -> None:
    """A 503 without Retry-After waits a jittered backoff (0.5 * base 0.5 s), then succeeds."""
    add_token(mock_api)
    mock_api.get(JOB_URL, status=503)
    mock_api.get(JOB_URL, payload=JOB)
    await client.get_job("job-1")
    assert sleeps.delays == [0.25]


async def test_retry_after_beyond_the_max_backoff_goes_back_to_the_caller(
    mock_api: CompatAioresponses, client: JetClient, sleeps: SleepRecorder
) -> None:
    """A long Retry-After is not slept inside the call; the error carries it."""
    add_token(mock_api)
    mock_api.get(JOB_URL, status=429, headers={"Retry-After": "120"})
    with pytest.raises(TransportError) as caught:
        await client.get_job("job-1")
    assert (caught.value.status, caught.value.retry_after_s) == (429, 120.0)
    assert sleeps.delays == []


async def test_5xx_exhausted_is_a_transport_error(
    mock_api: CompatAioresponses, client: JetClient, sleeps: SleepRecorder
) -> None:
    """After max_retries (3) retries of a 500 the call gives up with the status."""
    add_token(mock_api)
    mock_api.get(JOB_URL, status=500, body="boom", repeat=True)
    with pytest.raises(TransportError) as caught:
        await client.get_job("job-1")
    assert caught.value.status == 500
    assert len(sent(mock_api, "GET", JOB_URL)) == 4
    assert sleeps.delays == [0.25, 0.5, 1.0]


async def test_get_read_timeout_and_disconnect_are_retried(
    mock_api: CompatAioresponses, client: JetClient
) -> None:
    """An idempotent GET survives a read timeout and a dropped connection."""
    add_token(mock_api)
    mock_api.get(JOB_URL, exception=TimeoutError())
    mock_api.get(JOB_URL, exception=aiohttp.ServerDisconnectedError())
    mock_api.get(JOB_URL, payload=JOB)
    assert (await client.get_job("job-1")).job_id == "job-1"
    assert len(sent(mock_api, "GET", JOB_URL)) == 3


async def test_transport_failures_exhausted(
    mock_api: CompatAioresponses, client: JetClient
) -> None:
    """Connection failures that never stop end in TransportError from the aiohttp error."""
    add_token(mock_api)
    mock_api.get(JOB_URL, exception=refused(), repeat=True)
    with pytest.raises(TransportError) as caught:
        await client.get_job("job-1")
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectorError)
    assert caught.value.status is None


async def test_client_side_rate_limit_paces_requests(
    mock_api: CompatAioresponses, sleeps: SleepRecorder, clock: FakeClock
) -> None:
    """With one request a second, back-to-back calls wait for the bucket."""
    add_token(mock_api)
    mock_api.get(JOB_URL, payload=JOB, repeat=True)
    async with JetClient(
        BASE, "demo", SecretStr(SECRET), rate_limit_per_s=1, sleep=sleeps, clock=clock
    ) as jet:
        await jet.get_job("job-1")
        await jet.get_job("job-1")
    # token request and first GET: burst of 1, then 1 s each
    assert sleeps.delays == [1.0, 2.0]


# ----- the delivery POST -----------------------------------------------------------------


async def test_create_delivery_sends_objects(
    mock_api: CompatAioresponses, client: JetClient
) -> None:
    """The POST carries the objects in wire format and returns the new delivery."""
    add_token(mock_api)
    mock_api.post(DELIVERIES_URL, status=201, payload=CREATED)
    delivery = await client.create_delivery("job-1", OBJECTS)
    assert delivery.delivery_id == "del-1"
    (call,) = sent(mock_api, "POST", DELIVERIES_URL)
    assert call.kwargs["json"] == {"objects": [{"relativePath": "/a.mp4", "sizeInBytes": 10}]}


@pytest.mark.parametrize(
    "answer",
    [
        {"exception": aiohttp.ServerDisconnectedError()},
        {"exception": TimeoutError()},
        {"exception": aiohttp.ClientOSError(104, "Connection reset by peer")},
        {"status": 500, "body": "oops"},
        {"status": 502},
        {"status": 503},
    ],
    ids=["disconnect", "read-timeout", "reset", "500", "502", "503-no-retry-after"],
)
async def test_delivery_post_that_may_have_arrived_is_never_resent(
    mock_api: CompatAioresponses, client: JetClient, answer: dict[str, Any]
) -> None:
    """If the POST may have reached Jet, the outcome is unknown and exactly one POST is sent."""
    add_token(mock_api)
    mock_api.post(DELIVERIES_URL, **answer)
    mock_api.post(DELIVERIES_URL, status=201, payload=CREATED)
    with pytest.raises(OutcomeUnknownError):
        await client.create_delivery("job-1", OBJECTS)
    assert len(sent(mock_api, "POST", DELIVERIES_URL)) == 1


@pytest.mark.parametrize(
    "answer",
    [
        {"exception": refused()},
        {"exception": aiohttp.ConnectionTimeoutError()},
        {"status": 429},
        {"status": 503, "headers": {"Retry-After": "1"}},
        {"status": 401, "payload": {"message": "token expired"}},
    ],
    ids=["refused", "connect-timeout", "429", "503-retry-after", "401"],
)
async def test_delivery_post_that_provably_did_not_arrive_is_retried(
    mock_api: CompatAioresponses, client: JetClient, answer: dict[str, Any]
) -> None:
    """Refused connections and explicit "not now" answers are safe to send again."""
    add_token(mock_api, "tok-1")
    add_token(mock_api, "tok-2")
    mock_api.post(DELIVERIES_URL, **answer)
    mock_api.post(DELIVERIES_URL, status=201, payload=CREATED)
    delivery = await client.create_delivery("job-1", OBJECTS)
    assert delivery.delivery_id == "del-1"
    assert len(sent(mock_api, "POST", DELIVERIES_URL)) == 2


async def test_400_on_a_paused_job(mock_api: CompatAioresponses, client: JetClient) -> None:
    """A 400 from the POST on a job that reads back as paused is PausedError."""
    add_token(mock_api)
    mock_api.post(DELIVERIES_URL, status=400, payload={"message": "Bad Request"})
    mock_api.get(JOB_URL, payload={**JOB, "status": "PAUSED"})
    with pytest.raises(PausedError) as caught:
        await client.create_delivery("job-1", OBJECTS)
    assert caught.value.status == 400
    assert "Bad Request" in caught.value.body


async def test_400_on_a_running_job_is_a_rejection(
    mock_api: CompatAioresponses, client: JetClient
) -> None:
    """A 400 on a job that is not paused stays a plain RejectedError."""
    add_token(mock_api)
    mock_api.post(DELIVERIES_URL, status=400, payload={"message": "path escapes root"})
    mock_api.get(JOB_URL, payload=JOB)
    with pytest.raises(RejectedError) as caught:
        await client.create_delivery("job-1", OBJECTS)
    assert type(caught.value) is RejectedError
    assert "path escapes root" in caught.value.body


async def test_400_with_the_job_unreadable_falls_back_to_the_body(
    mock_api: CompatAioresponses, client: JetClient
) -> None:
    """When the job cannot be read, a body that mentions a pause decides."""
    add_token(mock_api)
    mock_api.post(DELIVERIES_URL, status=400, payload={"message": "Job is paused"})
    mock_api.get(JOB_URL, status=403)
    with pytest.raises(PausedError):
        await client.create_delivery("job-1", OBJECTS)


# ----- error mapping ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(403, ForbiddenError), (404, NotFoundError), (409, RejectedError)],
)
async def test_4xx_statuses_map_to_their_errors(
    mock_api: CompatAioresponses,
    client: JetClient,
    status: int,
    error_type: type[RejectedError],
) -> None:
    """403, 404 and other 4xx become their RejectedError subclasses with a truncated body."""
    add_token(mock_api)
    mock_api.get(JOB_URL, status=status, body="x" * 2000)
    with pytest.raises(error_type) as caught:
        await client.get_job("job-1")
    assert type(caught.value) is error_type
    assert caught.value.status == status
    assert caught.value.body == "x" * 500


async def test_unexpected_redirect_is_a_protocol_error(
    mock_api: CompatAioresponses, client: JetClient
) -> None:
    """A status the API does not use (a redirect) is not followed."""
    add_token(mock_api)
    mock_api.get(JOB_URL, status=302, headers={"Location": "https://elsewhere.test/"})
    with pytest.raises(ProtocolError):
        await client.get_job("job-1")


@pytest.mark.parametrize(
    "answer",
    [{"body": "{not json"}, {"body": b"\xff\xfe"}, {"payload": {"name": "no id"}}, {"body": "[]"}],
    ids=["bad-json", "bad-utf8", "missing-id", "array"],
)
async def test_malformed_answers_are_protocol_errors(
    mock_api: CompatAioresponses, client: JetClient, answer: dict[str, Any]
) -> None:
    """Bad JSON or a body of the wrong shape raises ProtocolError from the cause."""
    add_token(mock_api)
    mock_api.get(JOB_URL, **answer)
    with pytest.raises(ProtocolError) as caught:
        await client.get_job("job-1")
    assert caught.value.__cause__ is not None


# ----- models through the client ---------------------------------------------------------


async def test_unknown_states_and_fields_survive(
    mock_api: CompatAioresponses, client: JetClient
) -> None:
    """Undocumented delivery and transfer states are kept; unknown fields do not break parsing."""
    add_token(mock_api)
    delivery_url = f"{DELIVERIES_URL}/del-1"
    mock_api.get(
        delivery_url,
        payload={"deliveryId": "del-1", "state": "VERIFYING", "newThing": {"a": 1}},
    )
    mock_api.get(
        f"{JOBS_URL}/job-1/transfers/t-1",
        payload={"transferId": "t-1", "state": "THROTTLED", "whatever": [1, 2]},
    )
    delivery = await client.get_delivery("job-1", "del-1")
    transfer = await client.get_transfer("job-1", "t-1")
    assert delivery.state == "VERIFYING"
    assert not judge_delivery(delivery, 1, 0.0, 60.0).done
    assert transfer.state == "THROTTLED"


async def test_known_delivery_state(mock_api: CompatAioresponses, client: JetClient) -> None:
    """A documented state compares as the enum constant."""
    add_token(mock_api)
    mock_api.get(f"{DELIVERIES_URL}/del-1", payload={"deliveryId": "del-1", "state": "COMPLETED"})
    delivery = await client.get_delivery("job-1", "del-1")
    assert delivery.state is DeliveryState.COMPLETED
    assert judge_delivery(delivery, 1, 0.0, 60.0).done


# ----- lists -----------------------------------------------------------------------------


def _jobs(*ids: str) -> list[dict[str, str]]:
    return [{"jobId": job_id} for job_id in ids]


@pytest.mark.parametrize(
    "body", [_jobs("a", "b"), {"items": _jobs("a", "b")}], ids=["bare", "items"]
)
async def test_list_accepts_a_bare_array_or_items(
    mock_api: CompatAioresponses, client: JetClient, body: Any
) -> None:
    """Both list shapes give the same jobs."""
    add_token(mock_api)
    mock_api.get(JOBS_URL, payload=body)
    assert [job.job_id for job in await client.list_jobs()] == ["a", "b"]


async def test_list_follows_offset_pages(mock_api: CompatAioresponses, client: JetClient) -> None:
    """offset/limit/totalResultCount pages are fetched until the total is reached."""
    add_token(mock_api)
    page = {"limit": 2, "totalResultCount": 5}
    mock_api.get(JOBS_URL, payload={"items": _jobs("a", "b"), "offset": 0, **page})
    mock_api.get(
        f"{JOBS_URL}?offset=2&limit=2", payload={"items": _jobs("c", "d"), "offset": 2, **page}
    )
    mock_api.get(f"{JOBS_URL}?offset=4&limit=2", payload={"items": _jobs("e"), "offset": 4, **page})
    assert [job.job_id for job in await client.list_jobs()] == ["a", "b", "c", "d", "e"]


async def test_list_follows_next_links_on_the_same_origin(
    mock_api: CompatAioresponses, client: JetClient
) -> None:
    """A ``next`` link is followed; the state filter of list_transfers is sent."""
    add_token(mock_api)
    first = f"{JOBS_URL}/job-1/transfers?state=IN_PROGRESS"
    mock_api.get(
        first,
        payload={"items": [{"transferId": "t1", "state": "IN_PROGRESS"}], "next": "?page=2"},
    )
    mock_api.get(
        f"{JOBS_URL}/job-1/transfers?page=2",
        payload={"items": [{"transferId": "t2", "state": "IN_PROGRESS"}]},
    )
    transfers = await client.list_transfers("job-1", state=TransferState.IN_PROGRESS)
    assert [transfer.transfer_id for transfer in transfers] == ["t1", "t2"]


async def test_list_refuses_a_next_link_to_another_origin(
    mock_api: CompatAioresponses, client: JetClient
) -> None:
    """The bearer token is never sent to a host named by the answer."""
    add_token(mock_api)
    mock_api.get(JOBS_URL, payload={"items": _jobs("a"), "next": "https://evil.test/v1/jobs"})
    with pytest.raises(ProtocolError, match="origin"):
        await client.list_jobs()


async def test_list_paging_has_a_safety_bound(
    mock_api: CompatAioresponses, client: JetClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that pages forever ends in a protocol error, not a hang."""
    monkeypatch.setattr(client_module, "MAX_PAGES", 3)
    add_token(mock_api)
    mock_api.get(JOBS_URL, payload={"items": _jobs("a"), "next": "/v1/jobs"}, repeat=True)
    with pytest.raises(ProtocolError, match="pages"):
        await client.list_jobs()
    assert len(sent(mock_api, "GET", JOBS_URL)) == 3


async def test_endpoints_and_profiles(mock_api: CompatAioresponses, client: JetClient) -> None:
    """Endpoints and storage profiles list."""
    add_token(mock_api)
    profiles = [
        {"storageProfileId": "sp-1", "name": "src", "url": "file:///a", "endpointId": "e"},
        {"storageProfileId": "sp-2", "name": "dst", "url": "file:///b", "endpointId": "e"},
    ]
    mock_api.get(f"{BASE}/v1/endpoints", payload={"items": [{"endpointId": "e", "name": "n"}]})
    mock_api.get(f"{BASE}/v1/storageProfiles", payload={"items": profiles})
    assert [endpoint.endpoint_id for endpoint in await client.list_endpoints()] == ["e"]
    assert [p.url for p in await client.list_storage_profiles()] == ["file:///a", "file:///b"]


async def test_ids_are_percent_encoded_in_paths(
    mock_api: CompatAioresponses, client: JetClient
) -> None:
    """An id with a slash stays one path segment."""
    add_token(mock_api)
    mock_api.get(f"{JOBS_URL}/a%2Fb", payload={"jobId": "a/b"})
    assert (await client.get_job("a/b")).job_id == "a/b"


# ----- metrics, session ------------------------------------------------------------------


async def test_metrics_use_route_templates(mock_api: CompatAioresponses, client: JetClient) -> None:
    """Requests are counted by route template and status, transport failures as "error"."""
    route = "/v1/jobs/{jobId}"
    ok_before = metric("jetwatch_api_requests_total", method="GET", route=route, status="200")
    err_before = metric("jetwatch_api_requests_total", method="GET", route=route, status="error")
    tokens_before = metric("jetwatch_token_refreshes_total")
    latency_before = metric("jetwatch_api_latency_seconds_count", method="GET", route=route)
    add_token(mock_api)
    mock_api.get(JOB_URL, exception=aiohttp.ServerDisconnectedError())
    mock_api.get(JOB_URL, payload=JOB)
    await client.get_job("job-1")
    assert metric("jetwatch_api_requests_total", method="GET", route=route, status="200") == (
        ok_before + 1
    )
    assert metric("jetwatch_api_requests_total", method="GET", route=route, status="error") == (
        err_before + 1
    )
    assert metric("jetwatch_token_refreshes_total") == tokens_before + 1
    latency_after = metric("jetwatch_api_latency_seconds_count", method="GET", route=route)
    assert latency_after == latency_before + 2


async def test_injected_session_is_used_and_left_open(mock_api: CompatAioresponses) -> None:
    """A session passed in belongs to the caller: the client does not close it."""
    add_token(mock_api)
    mock_api.get(JOB_URL, payload=JOB)
    async with aiohttp.ClientSession() as session:
        async with JetClient(BASE, "demo", SecretStr(SECRET), session=session) as jet:
            await jet.get_job("job-1")
        assert not session.closed


def test_base_url_must_be_http() -> None:
    """A base URL without scheme or host is refused at construction."""
    with pytest.raises(ValueError, match="http"):
        JetClient("jet.test", "demo", SecretStr(SECRET))


async def test_closed_client_refuses_to_send(mock_api: CompatAioresponses) -> None:
    """After close() no new session is opened behind the caller's back."""
    add_token(mock_api)
    jet = JetClient(BASE, "demo", SecretStr(SECRET))
    await jet.close()
    with pytest.raises(RuntimeError, match="closed"):
        await jet.list_jobs()


async def test_error_bodies_never_carry_the_secret_or_the_token(
    mock_api: CompatAioresponses, client: JetClient
) -> None:
    """A rejection (and a 5xx that ran out of retries) echoing the client secret and the
    bearer token keeps neither in the exception's body nor in any log line."""
    add_token(mock_api, "tok-visible-123")
    echo = {"message": f"refused {SECRET} / Bearer tok-visible-123"}
    mock_api.post(DELIVERIES_URL, status=422, payload=echo)
    mock_api.get(JOB_URL, status=503, payload=echo, repeat=True)
    with capture_logs() as logs:
        with pytest.raises(RejectedError) as rejected:
            await client.create_delivery("job-1", OBJECTS)
        with pytest.raises(TransportError):
            await client.get_job("job-1")
    assert rejected.value.status == 422
    assert rejected.value.body.count("***") == 2
    for text in (rejected.value.body, str(rejected.value), repr(logs)):
        assert SECRET not in text
        assert "tok-visible-123" not in text
    assert any(e.get("body", "").count("***") == 2 for e in logs)  # the 503's body is logged
