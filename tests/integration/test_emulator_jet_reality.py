"""The emulator's model of what the real Jet does: paused backlogs (both outcomes), growing
objects followed only for jobs that ask, per-object outcomes, per-file records when assumed."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import aiohttp

from jetwatch.emulators.jet import Assumptions, EmulatorServer, PausedBacklog
from tests.fixtures.emulator import Api, EmulatorFactory, fetch_token, make_manual_job, wait_for
from tests.fixtures.pipeline import grow_file, received


async def _setup(
    factory: EmulatorFactory, http: aiohttp.ClientSession, tmp_path: Path, **config: Any
) -> tuple[EmulatorServer, Api, str, Path, Path]:
    server = await factory(**config)
    job_id, src, dst = await make_manual_job(server, tmp_path)
    return server, Api(http, server.url, await fetch_token(http, server.url)), job_id, src, dst


async def _copying(api: Api, job_id: str, delivery_id: str) -> None:
    async def started() -> bool | None:
        body = await api.ok("GET", f"/v1/jobs/{job_id}/deliveries/{delivery_id}")
        return True if body["state"] == "IN_PROGRESS" else None

    await wait_for(started, timeout_s=5)
    await asyncio.sleep(0.3)


async def test_pause_with_clear_backlog_fails_the_delivery_in_flight(
    emulator_factory: EmulatorFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """--paused-backlog fail: the copy under way is abandoned (no partial file), what was
    not copied counts as failed, the delivery ends FAILED; after resuming, a new delivery
    skips what arrived and copies the rest."""
    server, api, job_id, src, dst = await _setup(
        emulator_factory, http, tmp_path, bandwidth_bps=100_000
    )
    (src / "a.bin").write_bytes(b"a" * 10)
    (src / "big.bin").write_bytes(os.urandom(200_000))
    objects = [{"relativePath": "/a.bin"}, {"relativePath": "/big.bin"}]
    created = await api.deliver(job_id, objects)
    await _copying(api, job_id, created["deliveryId"])
    await api.ok("PATCH", f"/v1/jobs/{job_id}", {"paused": True})
    done = await api.wait_delivery(job_id, created["deliveryId"])
    assert done["state"] == "FAILED"
    assert done["deliverySummary"]["transferred"]["count"] == 1
    assert done["deliverySummary"]["failed"]["count"] == 1
    assert not (dst / "big.bin").exists()
    assert [f.name for f in dst.iterdir()] == ["a.bin"]  # no temporary file left
    assert (await api.call("POST", f"/v1/jobs/{job_id}/deliveries", {"objects": objects}))[0] == 400
    await api.ok("PATCH", f"/v1/jobs/{job_id}", {"paused": False})
    again = await api.wait_delivery(job_id, (await api.deliver(job_id, objects))["deliveryId"])
    assert again["state"] == "COMPLETED"
    first, second = await received(server)
    assert [o["outcome"] for o in first["objects"]] == ["transferred", "failed"]
    assert [o["outcome"] for o in second["objects"]] == ["skipped", "transferred"]
    assert (dst / "big.bin").read_bytes() == (src / "big.bin").read_bytes()


async def test_pause_with_clear_backlog_stalls_the_delivery_for_ever(
    emulator_factory: EmulatorFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """--paused-backlog stall: the delivery keeps its state and never moves again, not even
    after the job resumes or the emulator restarts; its transfer is no longer in progress."""
    state_dir = tmp_path / "state"
    server, api, job_id, src, dst = await _setup(
        emulator_factory,
        http,
        tmp_path,
        bandwidth_bps=100_000,
        paused_backlog=PausedBacklog.STALL,
        state_dir=state_dir,
    )
    (src / "big.bin").write_bytes(os.urandom(200_000))
    created = await api.deliver(job_id, [{"relativePath": "/big.bin"}])
    delivery = f"/v1/jobs/{job_id}/deliveries/{created['deliveryId']}"
    await _copying(api, job_id, created["deliveryId"])
    await api.ok("PATCH", f"/v1/jobs/{job_id}", {"paused": True})
    await api.ok("PATCH", f"/v1/jobs/{job_id}", {"paused": False})
    await asyncio.sleep(2.5)  # longer than the copy would have taken
    body = await api.ok("GET", delivery)
    assert body["state"] == "IN_PROGRESS"
    assert body["deliverySummary"]["transferred"]["count"] == 0
    transfer = await api.ok(
        "GET", f"/v1/jobs/{job_id}/transfers/{body['transfers'][0]['transferId']}"
    )
    assert transfer["state"] == "CANCELLED"
    assert (await api.call("GET", f"/v1/jobs/{job_id}/transfers?state=IN_PROGRESS"))[0] == 404
    assert not (dst / "big.bin").exists()
    await server.stop()
    again = await emulator_factory(state_dir=state_dir, paused_backlog=PausedBacklog.STALL)
    api_again = Api(http, again.url, await fetch_token(http, again.url))
    assert (await api_again.ok("GET", delivery))["state"] == "IN_PROGRESS"


async def test_job_keeping_its_backlog_goes_on_after_resume(
    emulator_factory: EmulatorFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """clearBacklogOnPause false: a paused job's delivery stops between files and goes on
    where it was once the job is resumed."""
    _, api, _, src, dst = await _setup(emulator_factory, http, tmp_path, bandwidth_bps=100_000)
    listed = (await api.ok("GET", "/v1/storageProfiles"))["items"]
    profiles = {p["url"]: p["storageProfileId"] for p in listed}
    data = {
        "source": {"storageProfileId": profiles[src.resolve().as_uri()]},
        "destination": {"storageProfileId": profiles[dst.resolve().as_uri()]},
    }
    body = {
        "name": "Keeps",
        "actions": [{"type": "TRANSFER", "data": data}],
        "options": {"clearBacklogOnPause": False},
    }
    job_id = (await api.ok("POST", "/v1/jobs", body))["jobId"]
    for name in ("one.bin", "two.bin"):
        (src / name).write_bytes(os.urandom(60_000))
    objects = [{"relativePath": "/one.bin"}, {"relativePath": "/two.bin"}]
    created = await api.deliver(job_id, objects)
    delivery = f"/v1/jobs/{job_id}/deliveries/{created['deliveryId']}"
    await _copying(api, job_id, created["deliveryId"])
    await api.ok("PATCH", f"/v1/jobs/{job_id}", {"paused": True})

    async def first_done() -> bool | None:
        summary = (await api.ok("GET", delivery))["deliverySummary"]
        return True if summary["transferred"]["count"] == 1 else None

    await wait_for(first_done, timeout_s=5)
    await asyncio.sleep(1.0)  # long enough for the second file, were it copied
    paused = await api.ok("GET", delivery)
    assert (paused["state"], paused["deliverySummary"]["transferred"]["count"]) == (
        "IN_PROGRESS",
        1,
    )
    await api.ok("PATCH", f"/v1/jobs/{job_id}", {"paused": False})
    done = await api.wait_delivery(job_id, created["deliveryId"])
    assert (done["state"], done["deliverySummary"]["transferred"]["count"]) == ("COMPLETED", 2)


async def test_growing_object_is_followed_until_idle_only_for_growing_jobs(
    emulator_factory: EmulatorFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Without areGrowingObjects a file still being written arrives as it was when the copy
    ran (partial); with it, the copy follows the file until idle and arrives whole."""
    _, api, job_id, src, dst = await _setup(emulator_factory, http, tmp_path)
    writer = asyncio.create_task(grow_file(src / "rec.mxf", 1.5))
    await asyncio.sleep(0.3)
    partial = await api.deliver(job_id, [{"relativePath": "/rec.mxf"}])
    await api.wait_delivery(job_id, partial["deliveryId"])
    await writer
    assert 0 < (dst / "rec.mxf").stat().st_size < (src / "rec.mxf").stat().st_size
    growing = {"areGrowingObjects": True, "growingObjects": {"growingIdleTimeoutInSeconds": 0.5}}
    await api.ok("PATCH", f"/v1/jobs/{job_id}", {"transferOptions": growing})
    writer = asyncio.create_task(grow_file(src / "rec2.mxf", 1.5))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    followed = await api.deliver(job_id, [{"relativePath": "/rec2.mxf"}])
    done = await api.wait_delivery(job_id, followed["deliveryId"], timeout_s=15)
    await writer
    assert time.monotonic() - started >= 1.0  # it waited for the writer
    assert (dst / "rec2.mxf").read_bytes() == (src / "rec2.mxf").read_bytes()
    assert done["deliverySummary"]["transferred"]["bytes"] == (src / "rec2.mxf").stat().st_size
    transfer = await api.ok(
        "GET", f"/v1/jobs/{job_id}/transfers/{done['transfers'][0]['transferId']}"
    )
    assert transfer["options"] == {"areGrowingObjects": True}


async def test_per_file_records_only_with_their_assumption(
    emulator_factory: EmulatorFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """GET /v1/jobs/{id}/files is not part of the known API (404 route); with
    --assume-job-files it lists a record per file with its transfer."""
    _, plain, job_id, src, _ = await _setup(emulator_factory, http, tmp_path / "plain")
    assert (await plain.call("GET", f"/v1/jobs/{job_id}/files"))[0] == 404
    _, api, job_id, src, _ = await _setup(
        emulator_factory,
        http,
        tmp_path / "assumed",
        assume=Assumptions(job_files=True),
        state_dir=tmp_path / "assumed-state",
    )
    (src / "a.bin").write_bytes(b"abc")
    created = await api.deliver(job_id, [{"relativePath": "/a.bin"}])
    done = await api.wait_delivery(job_id, created["deliveryId"])
    [record] = (await api.ok("GET", f"/v1/jobs/{job_id}/files"))["items"]
    assert record["transferId"] == done["transfers"][0]["transferId"]
    assert record["state"] == "COMPLETED"
    assert record["url"] == src.resolve().as_uri() + "/a.bin"
    assert record["sizeInBytes"] == 3
