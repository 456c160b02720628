"""Emulator persistence: --state-dir survives a restart; memory-only without it."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from jetwatch.emulators.jet import EmulatorServer, EmulatorStateError
from jetwatch.emulators.jet.copier import TEMP_SUFFIX
from jetwatch.emulators.jet.state import STATE_FILE, write_atomic
from tests.fixtures.emulator import Api, EmulatorFactory, fetch_token, make_manual_job, wait_for


async def _api(http: aiohttp.ClientSession, server: EmulatorServer) -> Api:
    return Api(http, server.url, await fetch_token(http, server.url))


async def test_state_survives_a_restart(
    emulator_factory: EmulatorFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Endpoints, profiles, jobs (paused flag too) and deliveries come back after a restart."""
    state_dir = tmp_path / "state"
    first = await emulator_factory(state_dir=state_dir)
    job_id, src, _ = await make_manual_job(first, tmp_path)
    (src / "a.txt").write_text("a")
    api = await _api(http, first)
    created = await api.deliver(job_id, [{"relativePath": "/a.txt"}])
    done = await api.wait_delivery(job_id, created["deliveryId"])
    await api.ok("PATCH", f"/v1/jobs/{job_id}", {"paused": True})
    before = {
        path: await api.ok("GET", path)
        for path in ("/v1/endpoints", "/v1/storageProfiles", f"/v1/jobs/{job_id}")
    }
    await first.stop()
    assert json.loads((state_dir / STATE_FILE).read_text())["version"] == 1
    assert [p.name for p in state_dir.iterdir()] == [STATE_FILE]

    second = await emulator_factory(state_dir=state_dir)
    stale = Api(http, second.url, api.token)
    assert (await stale.call("GET", "/v1/jobs"))[0] == 401  # tokens are not persisted
    api = await _api(http, second)
    for path, body in before.items():
        assert await api.ok("GET", path) == body
    assert await api.ok("GET", f"/v1/jobs/{job_id}/deliveries/{created['deliveryId']}") == done
    async with http.get(f"{second.url}/_emulator/deliveries") as response:
        assert [d["deliveryId"] for d in (await response.json())["items"]] == [
            created["deliveryId"]
        ]


async def test_unfinished_delivery_resumes_after_restart(
    emulator_factory: EmulatorFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A delivery cut off by a stop finishes after the restart; no temporary file is left."""
    state_dir = tmp_path / "state"
    slow = await emulator_factory(state_dir=state_dir, bandwidth_bps=20_000)
    job_id, src, dst = await make_manual_job(slow, tmp_path)
    (src / "big.bin").write_bytes(b"b" * 200_000)  # ~10 s at 20 kB/s: still running at stop
    api = await _api(http, slow)
    created = await api.deliver(job_id, [{"relativePath": "/big.bin"}])
    path = f"/v1/jobs/{job_id}/deliveries/{created['deliveryId']}"

    async def running() -> bool | None:
        return True if (await api.ok("GET", path))["state"] == "IN_PROGRESS" else None

    await wait_for(running)
    await slow.stop()
    assert not (dst / "big.bin").exists()
    assert not list(dst.rglob(f"*{TEMP_SUFFIX}"))

    fast = await emulator_factory(state_dir=state_dir)
    api = await _api(http, fast)
    done = await api.wait_delivery(job_id, created["deliveryId"])
    assert done["state"] == "COMPLETED"
    assert (dst / "big.bin").read_bytes() == (src / "big.bin").read_bytes()


async def test_without_state_dir_nothing_is_written(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Without --state-dir the emulator keeps everything in memory."""
    server = await emulator_factory(state_dir=None)
    await make_manual_job(server, tmp_path / "folders")
    await server.stop()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folders"]


async def test_corrupt_state_file_refuses_to_start(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A state file that is not valid JSON stops the start with a clear error."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / STATE_FILE).write_text("{not json")
    with pytest.raises(EmulatorStateError, match="cannot read emulator state"):
        await emulator_factory(state_dir=state_dir)
    assert (state_dir / STATE_FILE).read_text() == "{not json"


def test_write_atomic_replaces_the_whole_file(tmp_path: Path) -> None:
    """write_atomic leaves the new content and no temporary file behind."""
    target = tmp_path / "state.json"
    target.write_text("old")
    write_atomic(target, '{"new": true}')
    assert target.read_text() == '{"new": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
