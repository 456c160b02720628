"""Emulator endpoints, storage profiles and jobs: CRUD, paging, pause/resume and validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from jetwatch.emulators.jet import EmulatorServer
from tests.fixtures.emulator import Api


async def _endpoint_id(api: Api) -> str:
    items = (await api.ok("GET", "/v1/endpoints"))["items"]
    assert len(items) == 1
    endpoint_id: str = items[0]["endpointId"]
    return endpoint_id


async def _profile(api: Api, folder: Path, name: str = "profile") -> str:
    body = {"endpointId": await _endpoint_id(api), "url": folder.as_uri(), "name": name}
    profile_id: str = (await api.ok("POST", "/v1/storageProfiles", body))["storageProfileId"]
    return profile_id


def _job_body(source: str, dest: str, **extra: Any) -> dict[str, Any]:
    action = {
        "type": "TRANSFER",
        "data": {"source": {"storageProfileId": source}, "destination": {"storageProfileId": dest}},
    }
    return {"name": "Job", "actions": [action], **extra}


async def test_storage_profiles_are_created_listed_and_fetched(api: Api, tmp_path: Path) -> None:
    """A file:// profile round-trips through POST, GET list and GET by id."""
    folder = tmp_path / "with space é"
    profile_id = await _profile(api, folder, "Example Profile")
    fetched = await api.ok("GET", f"/v1/storageProfiles/{profile_id}")
    assert fetched["url"] == folder.as_uri()
    assert fetched["name"] == "Example Profile"
    assert fetched["storageProfileType"] == "ON_PREMISE_FILE_STORAGE"
    listed = (await api.ok("GET", "/v1/storageProfiles"))["items"]
    assert [p["storageProfileId"] for p in listed] == [profile_id]
    status, body = await api.call("GET", "/v1/storageProfiles/nope")
    assert status == 404
    assert body["message"]


@pytest.mark.parametrize(
    "change",
    [
        {"url": "http://example.com/folder"},
        {"url": "file://server/share"},
        {"url": "file:relative/path"},
        {"url": 5},
        {"endpointId": "unknown"},
        {"name": ""},
    ],
)
async def test_bad_storage_profile_bodies_answer_400(api: Api, change: dict[str, Any]) -> None:
    """Profile URLs must be file:///absolute paths on a known endpoint, with a name."""
    body = {"endpointId": await _endpoint_id(api), "url": "file:///data/in", "name": "p", **change}
    status, data = await api.call("POST", "/v1/storageProfiles", body)
    assert status == 400
    assert data["message"]


async def test_manual_job_is_created_with_its_fields(api: Api, tmp_path: Path) -> None:
    """A job without triggers is manual, READY, not paused, and echoes unknown fields; as in a
    real dump: ``triggers: []``, ``triggerTypes: []``, both clearBacklog options true, and no
    delivery list."""
    src, dst = await _profile(api, tmp_path / "a"), await _profile(api, tmp_path / "b")
    job = await api.ok("POST", "/v1/jobs", _job_body(src, dst, description="kept"))
    assert job["jobId"]
    assert job["createdOn"].endswith("Z")
    assert job["name"] == "Job"
    assert job["triggerTypes"] == []
    assert job["triggers"] == []
    assert job["options"] == {"clearBacklogOnPause": True, "clearBacklogOnStop": True}
    assert (job["status"], job["paused"]) == ("READY", False)
    assert job["description"] == "kept"
    assert job["actions"][0]["data"]["source"]["storageProfileId"] == src
    assert job["actions"][0]["actionId"]
    assert "deliveries" not in job
    assert await api.ok("GET", f"/v1/jobs/{job['jobId']}") == job
    assert await api.ok("GET", f"/v1/jobs/{job['jobId']}/") == job  # a trailing slash works


async def test_job_options_are_settable_at_creation_and_by_patch(api: Api, tmp_path: Path) -> None:
    """clearBacklogOnPause may be set when the job is made; PATCH changes growing options."""
    src, dst = await _profile(api, tmp_path / "a"), await _profile(api, tmp_path / "b")
    body = _job_body(src, dst, options={"clearBacklogOnPause": False})
    job = await api.ok("POST", "/v1/jobs/", body)
    assert job["options"] == {"clearBacklogOnPause": False, "clearBacklogOnStop": True}
    bad = await api.call("POST", "/v1/jobs", _job_body(src, dst, options={"clearBacklogOnStop": 1}))
    assert bad[0] == 400
    growing = {"areGrowingObjects": True, "growingObjects": {"growingIdleTimeoutInSeconds": 5}}
    patched = await api.ok("PATCH", f"/v1/jobs/{job['jobId']}", {"transferOptions": growing})
    assert patched["actions"][0]["data"]["transferOptions"] == growing
    assert patched["paused"] is False
    assert (await api.call("PATCH", f"/v1/jobs/{job['jobId']}", {}))[0] == 400


def _hot_folder(source: str) -> list[dict[str, Any]]:
    return [{"type": "HOT_FOLDER", "data": {"source": {"storageProfileId": source}}}]


async def test_hot_folder_job_lists_its_trigger(api: Api, tmp_path: Path) -> None:
    """A HOT_FOLDER trigger on the action's source makes a hot folder job."""
    src, dst = await _profile(api, tmp_path / "a"), await _profile(api, tmp_path / "b")
    body = _job_body(src, dst)
    body["actions"][0]["triggers"] = _hot_folder(src)
    job = await api.ok("POST", "/v1/jobs", body)
    assert job["triggerTypes"] == ["HOT_FOLDER"]
    assert job["triggers"] == _hot_folder(src)
    status, data = await api.call(
        "POST", f"/v1/jobs/{job['jobId']}/deliveries", {"objects": [{"relativePath": "/a"}]}
    )
    assert status == 400
    assert "manual" in data["message"]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b, s, d: b.pop("actions"),
        lambda b, s, d: b.update(actions=[]),
        lambda b, s, d: b["actions"][0].update(type="COPY"),
        lambda b, s, d: b["actions"][0]["data"].pop("destination"),
        lambda b, s, d: b["actions"][0]["data"]["source"].update(storageProfileId="nope"),
        lambda b, s, d: b["actions"][0].update(triggers=_hot_folder(d)),
        lambda b, s, d: b.update(triggers="HOT_FOLDER"),
        lambda b, s, d: b.update(name=""),
        lambda b, s, d: b.update(paused="yes"),
    ],
)
async def test_bad_job_bodies_answer_400_with_message(
    api: Api, tmp_path: Path, mutate: Any
) -> None:
    """Job validation: TRANSFER action, known profiles, trigger source equal to the action's."""
    src, dst = await _profile(api, tmp_path / "a"), await _profile(api, tmp_path / "b")
    body = _job_body(src, dst)
    mutate(body, src, dst)
    status, data = await api.call("POST", "/v1/jobs", body)
    assert status == 400
    assert data["message"]
    assert (await api.ok("GET", "/v1/jobs"))["items"] == []


async def test_invalid_json_answers_400(emulator: EmulatorServer, api: Api) -> None:
    """A body that is not JSON is refused with a message."""
    headers = {"Authorization": f"Bearer {api.token}", "Content-Type": "application/json"}
    async with api.session.post(f"{emulator.url}/v1/jobs", data="{nope", headers=headers) as resp:
        assert resp.status == 400
        assert (await resp.json())["message"]


async def test_jobs_list_pages_with_offset_and_limit(api: Api, tmp_path: Path) -> None:
    """GET /v1/jobs answers items with offset, limit and totalResultCount."""
    src, dst = await _profile(api, tmp_path / "a"), await _profile(api, tmp_path / "b")
    ids = [(await api.ok("POST", "/v1/jobs", _job_body(src, dst)))["jobId"] for _ in range(3)]
    first = await api.ok("GET", "/v1/jobs?limit=2")
    assert (first["totalResultCount"], first["offset"], first["limit"]) == (3, 0, 2)
    second = await api.ok("GET", "/v1/jobs?offset=2&limit=2")
    assert [j["jobId"] for j in first["items"] + second["items"]] == ids
    assert len((await api.ok("GET", "/v1/jobs"))["items"]) == 3
    assert (await api.call("GET", "/v1/jobs?limit=abc"))[0] == 400
    assert (await api.call("GET", "/v1/jobs?offset=-1"))[0] == 400
    assert (await api.ok("GET", "/v1/jobs?limit=1000"))["limit"] == 100


async def test_paused_job_refuses_deliveries_until_resumed(
    emulator_job: tuple[EmulatorServer, str, Path, Path], api: Api
) -> None:
    """PATCH paused=true → status PAUSED and 400 on deliveries; paused=false → accepted again."""
    _, job_id, src, _ = emulator_job
    (src / "a.txt").write_text("a")
    paused = await api.ok("PATCH", f"/v1/jobs/{job_id}", {"paused": True})
    assert (paused["paused"], paused["status"]) == (True, "PAUSED")
    objects = {"objects": [{"relativePath": "/a.txt"}]}
    status, body = await api.call("POST", f"/v1/jobs/{job_id}/deliveries", objects)
    assert status == 400
    assert body["message"] == "job is paused"
    resumed = await api.ok("PATCH", f"/v1/jobs/{job_id}", {"paused": False})
    assert (resumed["paused"], resumed["status"]) == (False, "READY")
    created = await api.ok("POST", f"/v1/jobs/{job_id}/deliveries", objects)
    assert (await api.wait_delivery(job_id, created["deliveryId"]))["state"] == "COMPLETED"
    assert (await api.call("PATCH", f"/v1/jobs/{job_id}", {"paused": "no"}))[0] == 400


async def test_deleted_job_is_gone(
    emulator_job: tuple[EmulatorServer, str, Path, Path], api: Api
) -> None:
    """DELETE answers 204; the job, its deliveries and new deliveries then answer 404."""
    _, job_id, _, _ = emulator_job
    status, _ = await api.call("DELETE", f"/v1/jobs/{job_id}")
    assert status == 204
    assert (await api.call("GET", f"/v1/jobs/{job_id}"))[0] == 404
    objects = {"objects": [{"relativePath": "/a"}]}
    assert (await api.call("POST", f"/v1/jobs/{job_id}/deliveries", objects))[0] == 404
    assert (await api.call("DELETE", f"/v1/jobs/{job_id}"))[0] == 404


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"objects": []},
        {"objects": "a"},
        {"objects": ["/a"]},
        {"objects": [{"relativePath": "a.txt"}]},
        {"objects": [{"relativePath": 3}]},
        {"objects": [{"relativePath": "/../etc/passwd"}]},
        {"objects": [{"relativePath": "/a/../../b"}]},
        {"objects": [{"relativePath": "/a", "isDirectory": "true"}]},
        {"objects": [{"relativePath": "/a", "sizeInBytes": -1}]},
        {"objects": [{"relativePath": "/a", "sizeInBytes": "10"}]},
        {"objects": [{"relativePath": "/"}]},
        [{"relativePath": "/a"}],
    ],
)
async def test_malformed_deliveries_answer_400(
    emulator_job: tuple[EmulatorServer, str, Path, Path], api: Api, body: Any
) -> None:
    """Delivery bodies are validated; nothing is created when they are wrong."""
    server, job_id, _, _ = emulator_job
    status, data = await api.call("POST", f"/v1/jobs/{job_id}/deliveries", body)
    assert status == 400
    assert data["message"]
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/_emulator/deliveries") as r:
        assert (await r.json())["items"] == []


async def test_unknown_ids_answer_404(
    emulator_job: tuple[EmulatorServer, str, Path, Path], api: Api
) -> None:
    """Unknown jobs, deliveries, transfers and routes answer 404 with a message."""
    _, job_id, _, _ = emulator_job
    for path in (
        "/v1/jobs/nope",
        f"/v1/jobs/{job_id}/deliveries/nope",
        f"/v1/jobs/{job_id}/transfers/nope",
        "/v1/nothing-here",
    ):
        status, data = await api.call("GET", path)
        assert status == 404, path
        assert data["message"]
    status, _ = await api.call(
        "POST", "/v1/jobs/nope/deliveries", {"objects": [{"relativePath": "/a"}]}
    )
    assert status == 404
    status, data = await api.call("PUT", "/v1/jobs", {})
    assert status == 405
    assert data["message"]
