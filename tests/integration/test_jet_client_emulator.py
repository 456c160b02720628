"""JetClient against the real emulator over HTTP: jobs, deliveries, pauses, short tokens, faults."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from jetwatch.apis.jet.client import JetClient
from jetwatch.apis.jet.models import Delivery, DeliveryObject, DeliveryState, TransferState
from jetwatch.emulators.jet import EmulatorServer
from jetwatch.errors import (
    AuthError,
    ForbiddenError,
    OutcomeUnknownError,
    PausedError,
)
from jetwatch.targets.jet import judge_delivery
from tests.fixtures.emulator import (
    ADMIN_ID,
    ADMIN_SECRET,
    VIEWER_ID,
    VIEWER_SECRET,
    EmulatorFactory,
    make_manual_job,
    set_paused,
    wait_for,
)

JobSetup = tuple[EmulatorServer, str, Path, Path]


@dataclass
class InstantSleep:
    """Records backoff delays without waiting, so fault storms cost no wall time."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, delay_s: float) -> None:
        self.delays.append(delay_s)
        await asyncio.sleep(0)


def make_client(
    server: EmulatorServer,
    client_id: str = ADMIN_ID,
    secret: str = ADMIN_SECRET,
    *,
    sleep: InstantSleep | None = None,
    clock: Callable[[], float] = time.monotonic,
    max_retries: int = 5,
    rate_limit_per_s: float = 20.0,
) -> JetClient:
    return JetClient(
        server.url,
        client_id,
        SecretStr(secret),
        sleep=sleep or asyncio.sleep,
        clock=clock,
        max_retries=max_retries,
        rate_limit_per_s=rate_limit_per_s,
    )


@pytest.fixture
async def jet(emulator: EmulatorServer) -> AsyncIterator[JetClient]:
    async with make_client(emulator, sleep=InstantSleep()) as client:
        yield client


async def follow(
    client: JetClient, job_id: str, delivery_id: str, *, timeout_s: float = 15.0
) -> Delivery:
    """Poll the delivery until it is COMPLETED or FAILED."""

    async def finished() -> Delivery | None:
        delivery = await client.get_delivery(job_id, delivery_id)
        return delivery if judge_delivery(delivery, 1, 0.0, timeout_s).done else None

    return await wait_for(finished, timeout_s=timeout_s, interval_s=0.05)


async def set_faults(http: aiohttp.ClientSession, server: EmulatorServer, faults: object) -> None:
    async with http.post(f"{server.url}/_emulator/faults", json=faults) as response:
        assert response.status == 200, await response.text()


async def received(http: aiohttp.ClientSession, server: EmulatorServer) -> list[dict[str, object]]:
    async with http.get(f"{server.url}/_emulator/deliveries") as response:
        items: list[dict[str, object]] = (await response.json())["items"]
        return items


async def test_login_and_read_jobs_endpoints_profiles(
    emulator_job: JobSetup, jet: JetClient
) -> None:
    """The client logs in and reads the job, endpoints and the job's storage profiles."""
    _, job_id, src, _ = emulator_job
    jobs = await jet.list_jobs()
    assert [job.job_id for job in jobs] == [job_id]
    job = await jet.get_job(job_id)
    assert job.is_manual
    assert not job.paused
    assert job.source_profile_id is not None
    assert len(await jet.list_endpoints()) >= 1
    profiles = {p.storage_profile_id: p for p in await jet.list_storage_profiles()}
    assert profiles[job.source_profile_id].url == src.resolve().as_uri()


async def test_delivery_created_and_followed_to_completed(
    emulator_job: JobSetup, jet: JetClient
) -> None:
    """A delivery copies the file, ends COMPLETED; its transfer is readable; once nothing is
    in progress the in-progress listing (404 when empty) reads as empty."""
    _, job_id, src, dst = emulator_job
    (src / "clip.mp4").write_bytes(b"x" * 4096)
    created = await jet.create_delivery(
        job_id, [DeliveryObject(relative_path="/clip.mp4", size_in_bytes=4096)]
    )
    done = await follow(jet, job_id, created.delivery_id)
    assert done.state is DeliveryState.COMPLETED
    assert done.summary.transferred.count == 1
    assert (dst / "clip.mp4").read_bytes() == b"x" * 4096
    assert (await jet.get_job(job_id)).delivery_ids is None  # the real API does not list them
    transfer = await jet.get_transfer(job_id, done.transfer_ids[0])
    assert transfer.state is TransferState.COMPLETED
    assert transfer.metadata.delivery_id == created.delivery_id
    assert await jet.list_transfers(job_id) == []


async def test_paused_job_refuses_deliveries(emulator_job: JobSetup, jet: JetClient) -> None:
    """A paused job answers 400, which the client reports as PausedError."""
    server, job_id, src, _ = emulator_job
    (src / "a.txt").write_text("a")
    objects = [DeliveryObject(relative_path="/a.txt")]
    await set_paused(server, job_id, True)
    assert (await jet.get_job(job_id)).paused
    with pytest.raises(PausedError):
        await jet.create_delivery(job_id, objects)
    await set_paused(server, job_id, False)
    assert not (await jet.get_job(job_id)).paused
    created = await jet.create_delivery(job_id, objects)
    assert (await follow(jet, job_id, created.delivery_id)).state is DeliveryState.COMPLETED


async def test_viewer_role_may_not_deliver(emulator_job: JobSetup) -> None:
    """The view-only role reads jobs but its delivery POST is forbidden."""
    server, job_id, _, _ = emulator_job
    async with make_client(server, VIEWER_ID, VIEWER_SECRET) as viewer:
        assert (await viewer.get_job(job_id)).job_id == job_id
        with pytest.raises(ForbiddenError):
            await viewer.create_delivery(job_id, [DeliveryObject(relative_path="/a")])


async def test_wrong_secret_is_an_auth_error(emulator: EmulatorServer) -> None:
    """The emulator's 401 on /oauth/token becomes AuthError without the secret in it."""
    async with make_client(emulator, ADMIN_ID, "not-the-secret") as client:
        with pytest.raises(AuthError) as caught:
            await client.list_jobs()
    assert "not-the-secret" not in f"{caught.value} {caught.value!r} {caught.value.body}"


def _frozen_clock() -> Callable[[], float]:
    return lambda: 0.0


@pytest.mark.parametrize(
    "clock",
    [None, _frozen_clock()],
    ids=["proactive-refresh", "refresh-after-401"],
)
async def test_three_second_tokens_are_survived(
    emulator_factory: EmulatorFactory, tmp_path: Path, clock: Callable[[], float] | None
) -> None:
    """A delivery followed for longer than the token lifetime never fails on auth.

    With the real clock the client refreshes before expiry; with a frozen clock it believes
    its token is fresh, so the server's 401 drives the refresh.
    """
    # 48 KiB at 12 KiB/s: the copy outlives a 3-second token.
    server = await emulator_factory(token_ttl_s=3.0, bandwidth_bps=12 * 1024)
    job_id, src, dst = await make_manual_job(server, tmp_path / "ttl")
    (src / "big.bin").write_bytes(b"b" * 48 * 1024)
    client = make_client(server, clock=clock or time.monotonic, rate_limit_per_s=0)
    async with client:
        created = await client.create_delivery(job_id, [DeliveryObject(relative_path="/big.bin")])
        done = await follow(client, job_id, created.delivery_id, timeout_s=20.0)
    assert done.state is DeliveryState.COMPLETED
    assert (dst / "big.bin").stat().st_size == 48 * 1024
    assert server.stats.by_route["POST /oauth/token"] >= 2
    if clock is not None:
        assert server.stats.by_status["401"] >= 1


async def test_fault_storm_of_429_and_503_is_survived(
    emulator_job: JobSetup, http: aiohttp.ClientSession
) -> None:
    """With 30 % of answers 429/503 (Retry-After: 1) every call succeeds, no POST is doubled."""
    server, job_id, src, _ = emulator_job
    for name in ("a", "b", "c"):
        (src / f"{name}.txt").write_text(name)
    await set_faults(http, server, {"status_rates": {"429": 0.2, "503": 0.1}, "seed": 7})
    sleep = InstantSleep()
    async with make_client(server, sleep=sleep, max_retries=20) as client:
        for _ in range(10):
            assert [job.job_id for job in await client.list_jobs()] == [job_id]
        delivery_ids = []
        for name in ("a", "b", "c"):
            objects = [DeliveryObject(relative_path=f"/{name}.txt")]
            delivery_ids.append((await client.create_delivery(job_id, objects)).delivery_id)
        for delivery_id in delivery_ids:
            assert (await follow(client, job_id, delivery_id)).state is DeliveryState.COMPLETED
    assert server.stats.by_status["429"] > 0
    assert server.stats.by_status["503"] > 0
    assert 1.0 in sleep.delays  # the emulator's Retry-After
    assert sorted(str(item["deliveryId"]) for item in await received(http, server)) == sorted(
        delivery_ids
    )


async def test_answer_lost_after_the_post_is_outcome_unknown(
    emulator_job: JobSetup, jet: JetClient, http: aiohttp.ClientSession
) -> None:
    """A connection dropped after the server acted is reported, not re-sent; it was received."""
    server, job_id, src, _ = emulator_job
    (src / "a.txt").write_text("a")
    await jet.get_job(job_id)  # fetch the token before every answer starts getting lost
    await set_faults(http, server, {"drop_rate": 1.0, "drop_phase": "after"})
    with pytest.raises(OutcomeUnknownError):
        await jet.create_delivery(job_id, [DeliveryObject(relative_path="/a.txt")])
    await set_faults(http, server, {})
    deliveries = await received(http, server)
    assert len(deliveries) == 1
    assert deliveries[0]["jobId"] == job_id
