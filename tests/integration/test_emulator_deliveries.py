"""Emulator deliveries: real copies, skipped and failed objects, transfers, bandwidth."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import aiohttp

from jetwatch.emulators.jet import Assumptions, EmulatorServer
from jetwatch.emulators.jet.copier import TEMP_SUFFIX
from tests.fixtures.emulator import Api, EmulatorFactory, fetch_token, make_manual_job, wait_for

Setup = tuple[EmulatorServer, str, Path, Path]


def _write(path: Path, data: bytes, mtime_s: int = 1_600_000_000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime_s, mtime_s + 0.123456789))  # sub-second part must survive too
    return path


def _tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _summary(delivery: dict[str, Any]) -> tuple[int, int, int]:
    s = delivery["deliverySummary"]
    return s["transferred"]["count"], s["skipped"]["count"], s["failed"]["count"]


async def test_delivery_copies_files_with_content_and_mtime(emulator_job: Setup, api: Api) -> None:
    """Files (nested, unicode, spaces) arrive with identical bytes and mtime; counts add up."""
    _, job_id, src, dst = emulator_job
    _write(src / "clip one.mp4", b"x" * 1000)
    _write(src / "deep/er/é ü 名前.mov", b"y" * 321)
    _write(src / "empty.txt", b"")
    objects: list[dict[str, Any]] = [
        {"relativePath": "/clip one.mp4", "sizeInBytes": 1000},
        {"relativePath": "/deep/er/é ü 名前.mov"},
        {"relativePath": "/empty.txt", "sizeInBytes": 0, "note": "echoed"},
    ]
    created = await api.deliver(job_id, objects)
    assert created["state"] == "CREATED"
    assert created["objects"] == objects
    assert created["metadata"]["jobId"] == job_id
    done = await api.wait_delivery(job_id, created["deliveryId"])
    assert done["state"] == "COMPLETED"
    assert _summary(done) == (3, 0, 0)
    assert done["deliverySummary"]["transferred"]["bytes"] == 1321
    assert _tree(dst) == _tree(src)
    assert not list(dst.rglob(f"*{TEMP_SUFFIX}"))
    # The real API: GET delivery shows no objects, and a job does not list its deliveries.
    assert "objects" not in done
    job = await api.ok("GET", f"/v1/jobs/{job_id}")
    assert "deliveries" not in job
    assert "deliveryIds" not in job


async def test_directory_object_copies_the_whole_tree(emulator_job: Setup, api: Api) -> None:
    """isDirectory copies every file below it, and "/" copies the whole profile."""
    _, job_id, src, dst = emulator_job
    _write(src / "show/ep1/a.mxf", b"a" * 10)
    _write(src / "show/ep2/b.mxf", b"b" * 20)
    (src / "show/empty").mkdir()
    _write(src / "other.txt", b"o")
    created = await api.deliver(job_id, [{"relativePath": "/show", "isDirectory": True}])
    done = await api.wait_delivery(job_id, created["deliveryId"])
    assert _summary(done) == (2, 0, 0)
    assert set(_tree(dst)) == {"show/ep1/a.mxf", "show/ep2/b.mxf"}
    assert (dst / "show/empty").is_dir()
    whole = await api.deliver(job_id, [{"relativePath": "/", "isDirectory": True}])
    done = await api.wait_delivery(job_id, whole["deliveryId"])
    assert _summary(done) == (1, 2, 0)
    assert _tree(dst) == _tree(src)


async def test_second_identical_delivery_is_skipped(emulator_job: Setup, api: Api) -> None:
    """Objects already at the destination with the same size and mtime count as skipped."""
    _, job_id, src, _ = emulator_job
    _write(src / "a.bin", b"1" * 50)
    _write(src / "b.bin", b"2" * 70)
    objects = [{"relativePath": "/a.bin"}, {"relativePath": "/b.bin"}]
    first = await api.wait_delivery(job_id, (await api.deliver(job_id, objects))["deliveryId"])
    assert _summary(first) == (2, 0, 0)
    second = await api.wait_delivery(job_id, (await api.deliver(job_id, objects))["deliveryId"])
    assert second["state"] == "COMPLETED"
    assert _summary(second) == (0, 2, 0)
    assert second["deliverySummary"]["skipped"]["bytes"] == 120
    _write(src / "a.bin", b"3" * 50, mtime_s=1_700_000_000)  # same size, new mtime: sent again
    third = await api.wait_delivery(job_id, (await api.deliver(job_id, objects))["deliveryId"])
    assert _summary(third) == (1, 1, 0)


async def test_missing_source_fails_the_delivery(emulator_job: Setup, api: Api) -> None:
    """A missing file counts as failed (bytes from sizeInBytes) and the transfer says why."""
    _, job_id, src, dst = emulator_job
    _write(src / "here.txt", b"h")
    objects: list[dict[str, Any]] = [
        {"relativePath": "/here.txt"},
        {"relativePath": "/gone.mp4", "sizeInBytes": 4096},
        {"relativePath": "/gone-dir", "isDirectory": True},
    ]
    done = await api.wait_delivery(job_id, (await api.deliver(job_id, objects))["deliveryId"])
    assert done["state"] == "FAILED"
    assert _summary(done) == (1, 0, 2)
    assert done["deliverySummary"]["failed"]["bytes"] == 4096
    transfer_id = done["transfers"][0]["transferId"]
    transfer = await api.ok("GET", f"/v1/jobs/{job_id}/transfers/{transfer_id}")
    assert transfer["state"] == "FAILED"
    assert transfer["error"]["code"] == "SOURCE_NOT_FOUND"
    assert "/gone.mp4" in transfer["error"]["reason"]
    assert (dst / "here.txt").exists()


async def test_fail_paths_fail_matching_objects(
    emulator_job: Setup, api: Api, http: aiohttp.ClientSession
) -> None:
    """Objects matching a fail_paths pattern fail; the others still arrive."""
    server, job_id, src, dst = emulator_job
    _write(src / "good.mp4", b"g" * 10)
    _write(src / "dir/broken.bad", b"b" * 5)
    async with http.post(f"{server.url}/_emulator/faults", json={"fail_paths": ["*.bad"]}) as r:
        assert r.status == 200
    objects: list[dict[str, Any]] = [
        {"relativePath": "/good.mp4"},
        {"relativePath": "/dir", "isDirectory": True},
    ]
    done = await api.wait_delivery(job_id, (await api.deliver(job_id, objects))["deliveryId"])
    assert done["state"] == "FAILED"
    assert _summary(done) == (1, 0, 1)
    assert done["deliverySummary"]["failed"]["bytes"] == 5
    assert (dst / "good.mp4").exists()
    assert not (dst / "dir/broken.bad").exists()


async def test_large_delivery_is_split_into_transfers(emulator_job: Setup, api: Api) -> None:
    """501 objects go out as two transfers (500 per transfer) whose progress adds up."""
    _, job_id, src, dst = emulator_job
    objects = []
    for i in range(501):
        _write(src / f"f{i:04}.txt", b"z" * 3)
        objects.append({"relativePath": f"/f{i:04}.txt", "sizeInBytes": 3})
    done = await api.wait_delivery(job_id, (await api.deliver(job_id, objects))["deliveryId"])
    assert done["state"] == "COMPLETED"
    assert _summary(done) == (501, 0, 0)
    transfer_ids = [t["transferId"] for t in done["transfers"]]
    assert len(transfer_ids) == 2
    counts = []
    for transfer_id in transfer_ids:
        transfer = await api.ok("GET", f"/v1/jobs/{job_id}/transfers/{transfer_id}")
        assert transfer["metadata"]["deliveryId"] == done["deliveryId"]
        assert transfer["source"]["storageProfileType"] == "ON_PREMISE_FILE_STORAGE"
        counts.append(transfer["transferProgress"]["transferred"]["count"])
    assert counts == [500, 1]
    # JET-API.md: the listing takes state=IN_PROGRESS only, and answers 404 when empty.
    status, _ = await api.call("GET", f"/v1/jobs/{job_id}/transfers?state=COMPLETED")
    assert status == 400
    assert (await api.call("GET", f"/v1/jobs/{job_id}/transfers"))[0] == 400
    assert (await api.call("GET", f"/v1/jobs/{job_id}/transfers?state=IN_PROGRESS"))[0] == 404
    assert len(list(dst.iterdir())) == 501


async def test_bandwidth_makes_progress_observable(
    emulator_factory: EmulatorFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """With --bandwidth a delivery is seen IN_PROGRESS with partial counts before COMPLETED."""
    server = await emulator_factory(bandwidth_bps=100_000, max_objects_per_transfer=10)
    job_id, src, _ = await make_manual_job(server, tmp_path)
    api = Api(http, server.url, await fetch_token(http, server.url))
    for name in ("a", "b", "c"):
        _write(src / name, b"q" * 20_000)  # ~0.2 s each at 100 kB/s
    created = await api.deliver(job_id, [{"relativePath": f"/{n}"} for n in "abc"])
    path = f"/v1/jobs/{job_id}/deliveries/{created['deliveryId']}"
    seen: list[tuple[str, int]] = [(created["state"], 0)]

    async def finished() -> bool | None:
        body = await api.ok("GET", path)
        observation = (body["state"], body["deliverySummary"]["transferred"]["count"])
        if observation != seen[-1]:
            seen.append(observation)
        return True if body["state"] in ("COMPLETED", "FAILED") else None

    await wait_for(finished, timeout_s=10.0, interval_s=0.01)
    states = [state for state, _ in seen]
    assert states[0] == "CREATED"
    assert states[-1] == "COMPLETED"
    assert set(states) == {"CREATED", "IN_PROGRESS", "COMPLETED"}
    assert states.index("IN_PROGRESS") < states.index("COMPLETED")
    assert any(state == "IN_PROGRESS" and 0 < n < 3 for state, n in seen)
    assert seen[-1] == ("COMPLETED", 3)


async def test_many_deliveries_run_at_once(emulator_job: Setup, api: Api) -> None:
    """Deliveries posted together all complete, each with its own files."""
    _, job_id, src, dst = emulator_job
    created = []
    for i in range(12):
        _write(src / f"d{i}/file.bin", bytes([i]) * (100 + i))
        created.append(await api.deliver(job_id, [{"relativePath": f"/d{i}", "isDirectory": True}]))
    for delivery in created:
        done = await api.wait_delivery(job_id, delivery["deliveryId"])
        assert _summary(done) == (1, 0, 0)
    assert _tree(dst) == _tree(src)


async def test_assumed_job_deliveries_and_objects_only_behind_their_flags(
    emulator_factory: EmulatorFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """--assume-job-deliveries lists a job's deliveries newest first, --assume-delivery-objects
    shows objects on GET delivery: conveniences tests of the adoption path need."""
    assume = Assumptions(job_deliveries=True, delivery_objects=True)
    server = await emulator_factory(assume=assume)
    job_id, src, _ = await make_manual_job(server, tmp_path)
    api = Api(http, server.url, await fetch_token(http, server.url))
    created = []
    for i in range(3):
        _write(src / f"f{i}.bin", bytes([i]) * 10)
        created.append(await api.deliver(job_id, [{"relativePath": f"/f{i}.bin"}]))
    job = await api.ok("GET", f"/v1/jobs/{job_id}")
    assert [d["deliveryId"] for d in job["deliveries"]] == [
        d["deliveryId"] for d in reversed(created)
    ]
    done = await api.wait_delivery(job_id, created[0]["deliveryId"])
    assert done["objects"] == [{"relativePath": "/f0.bin"}]
