"""Emulator fault injection and the /_emulator side door (received deliveries, stats)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from jetwatch.emulators.jet import EmulatorServer
from jetwatch.emulators.jet.faults import DropPhase, FaultInjector, parse_faults
from jetwatch.emulators.jet.validation import ErrorAnswer
from tests.fixtures.emulator import Api

Setup = tuple[EmulatorServer, str, Path, Path]


async def _admin(
    http: aiohttp.ClientSession, server: EmulatorServer, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    async with http.request(method, f"{server.url}/_emulator/{path}", json=body) as response:
        return response.status, await response.json()


async def _received(http: aiohttp.ClientSession, server: EmulatorServer) -> list[dict[str, Any]]:
    status, body = await _admin(http, server, "GET", "deliveries")
    assert status == 200
    items: list[dict[str, Any]] = body["items"]
    return items


async def test_status_fault_answers_429_with_retry_after(
    emulator_job: Setup, api: Api, http: aiohttp.ClientSession
) -> None:
    """status_rates {"429": 1} answers every API call 429 + Retry-After: 1; {} clears it."""
    server, job_id, _, _ = emulator_job
    assert (await _admin(http, server, "POST", "faults", {"status_rates": {"429": 1.0}}))[0] == 200
    async with http.get(
        f"{server.url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {api.token}"}
    ) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "1"
        assert (await response.json())["message"]
    body = {"client_id": "demo", "client_secret": "demo-secret", "grant_type": "client_credentials"}
    async with http.post(f"{server.url}/oauth/token", json=body) as response:
        assert response.status == 429
    assert (await _admin(http, server, "GET", "stats"))[0] == 200  # the side door is never faulted
    assert (await _admin(http, server, "POST", "faults", {}))[1]["status_rates"] == {}
    assert (await api.call("GET", f"/v1/jobs/{job_id}"))[0] == 200


async def test_503_fault_also_carries_retry_after(
    emulator: EmulatorServer, api: Api, http: aiohttp.ClientSession
) -> None:
    """503 answers carry Retry-After too; other statuses do not."""
    await _admin(http, emulator, "POST", "faults", {"status_rates": {"503": 1}})
    headers = {"Authorization": f"Bearer {api.token}"}
    async with http.get(f"{emulator.url}/v1/jobs", headers=headers) as response:
        assert (response.status, response.headers.get("Retry-After")) == (503, "1")
    await _admin(http, emulator, "POST", "faults", {"status_rates": {"500": 1}})
    async with http.get(f"{emulator.url}/v1/jobs", headers=headers) as response:
        assert (response.status, response.headers.get("Retry-After")) == (500, None)


async def test_latency_fault_still_answers(
    emulator: EmulatorServer, api: Api, http: aiohttp.ClientSession
) -> None:
    """latency_ms delays API answers without changing them, and is reported back."""
    status, config = await _admin(http, emulator, "POST", "faults", {"latency_ms": 20})
    assert status == 200
    assert config["latency_ms"] == 20
    assert (await api.call("GET", "/v1/jobs"))[0] == 200
    assert (await _admin(http, emulator, "GET", "faults"))[1]["latency_ms"] == 20


@pytest.mark.parametrize(
    "body",
    [
        {"status_rates": {"429": 1.5}},
        {"status_rates": {"abc": 0.1}},
        {"status_rates": {"200": 0.1}},
        {"status_rates": {"429": 0.6, "503": 0.6}},
        {"drop_rate": -1},
        {"latency_ms": "slow"},
        {"fail_paths": "*.bad"},
        {"drop_phase": "sometimes"},
        {"surprise": True},
        [],
    ],
)
async def test_bad_fault_bodies_answer_400(
    emulator: EmulatorServer, http: aiohttp.ClientSession, body: Any
) -> None:
    """Fault settings are validated and the old ones stay in force."""
    status, data = await _admin(http, emulator, "POST", "faults", body)
    assert status == 400
    assert data["message"]
    assert (await _admin(http, emulator, "GET", "faults"))[1]["status_rates"] == {}


async def test_drop_before_acting_creates_nothing(
    emulator_job: Setup, api: Api, http: aiohttp.ClientSession
) -> None:
    """A request dropped before acting loses its connection and has no effect."""
    server, job_id, src, _ = emulator_job
    (src / "a").write_text("a")
    await _admin(http, server, "POST", "faults", {"drop_rate": 1, "drop_phase": "before"})
    with pytest.raises(aiohttp.ClientError):
        await api.call(
            "POST", f"/v1/jobs/{job_id}/deliveries", {"objects": [{"relativePath": "/a"}]}
        )
    await _admin(http, server, "POST", "faults", {})
    assert await _received(http, server) == []
    assert (await api.call("GET", f"/v1/jobs/{job_id}/transfers?state=IN_PROGRESS"))[0] == 404
    assert (await _admin(http, server, "GET", "stats"))[1]["dropped"] == 1


async def test_drop_after_acting_leaves_a_delivery(
    emulator_job: Setup, api: Api, http: aiohttp.ClientSession
) -> None:
    """A request dropped after acting is unanswered but the delivery exists and runs."""
    server, job_id, src, dst = emulator_job
    (src / "a").write_text("a")
    await _admin(http, server, "POST", "faults", {"drop_rate": 1, "drop_phase": "after"})
    with pytest.raises(aiohttp.ClientError):
        await api.call(
            "POST", f"/v1/jobs/{job_id}/deliveries", {"objects": [{"relativePath": "/a"}]}
        )
    await _admin(http, server, "POST", "faults", {})
    (received,) = await _received(http, server)
    assert received["jobId"] == job_id
    done = await api.wait_delivery(job_id, received["deliveryId"])
    assert done["state"] == "COMPLETED"
    assert (dst / "a").read_text() == "a"


async def test_random_drops_happen_on_both_sides(
    emulator_job: Setup, api: Api, http: aiohttp.ClientSession
) -> None:
    """With drop_phase random, some dropped POSTs created a delivery and some did not."""
    server, job_id, src, _ = emulator_job
    (src / "a").write_text("a")
    await _admin(http, server, "POST", "faults", {"drop_rate": 1, "seed": 7})
    for _ in range(20):
        with pytest.raises(aiohttp.ClientError):
            await api.call(
                "POST", f"/v1/jobs/{job_id}/deliveries", {"objects": [{"relativePath": "/a"}]}
            )
    await _admin(http, server, "POST", "faults", {})
    assert 0 < len(await _received(http, server)) < 20


async def test_received_deliveries_and_stats(
    emulator_job: Setup, api: Api, http: aiohttp.ClientSession
) -> None:
    """/_emulator/deliveries lists what was posted; /_emulator/stats counts by route template."""
    server, job_id, src, _ = emulator_job
    (src / "a").write_text("a")
    objects = [{"relativePath": "/a", "sizeInBytes": 1}]
    created = await api.deliver(job_id, objects)
    await api.wait_delivery(job_id, created["deliveryId"])
    await api.ok("GET", f"/v1/jobs/{job_id}")
    (item,) = await _received(http, server)
    assert item["jobId"] == job_id
    assert item["deliveryId"] == created["deliveryId"]
    # Each object as posted, with what became of it.
    assert item["objects"] == [{**objects[0], "outcome": "transferred"}]
    assert item["state"] == "COMPLETED"
    assert item["createdOn"] == created["createdOn"]
    stats = (await _admin(http, server, "GET", "stats"))[1]
    assert stats["requests"]["POST /v1/jobs/{jobId}/deliveries"] == 1
    assert stats["requests"]["GET /v1/jobs/{jobId}/deliveries/{deliveryId}"] >= 1
    assert stats["requests"]["POST /v1/jobs"] == 1
    assert not any(route.split(" ")[1].startswith("/_emulator") for route in stats["requests"])
    assert stats["total"] == sum(stats["requests"].values())


def test_fault_draws_follow_the_rates() -> None:
    """pick_status follows the configured shares; a seed makes drops reproducible."""
    injector = FaultInjector()
    injector.configure(parse_faults({"status_rates": {"429": 0.5, "503": 0.5}, "seed": 1}))
    picks = {injector.pick_status() for _ in range(200)}
    assert picks == {429, 503}
    injector.configure(parse_faults({"drop_rate": 1, "drop_phase": "after"}))
    assert injector.pick_drop() is DropPhase.AFTER
    injector.configure(parse_faults({}))
    assert injector.pick_status() is None
    assert injector.pick_drop() is None
    with pytest.raises(ErrorAnswer):
        parse_faults({"drop_rate": 2})
