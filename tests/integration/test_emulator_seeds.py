"""The request bodies of the Jet API seed documents (000-002) work against the emulator as is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from jetwatch.emulators.jet import EmulatorServer
from tests.fixtures.emulator import wait_for

# Bodies copied verbatim from seeds 000, 001 and 002; only placeholders get real values,
# the way the seeds tell a reader to fill them in.
CREDENTIALS = """{
"client_id": "<your client_id>",
"client_secret": "<your client_secret>",
"grant_type": "client_credentials"
}"""

STORAGE_PROFILE = """{
"endpointId": "11111111-12345-abccd-12345",
"url": "file:///path/to/folder",
"name": "Example Profile"
}"""

HOT_FOLDER_JOB = """{
"name": "Example Transfer Job",
"actions": [
{
"type": "TRANSFER",
"data": {
"source": {
"storageProfileId": "11111111-12345-abccd-12345"
},
"destination": {
"storageProfileId": "11111111-12345-abccd-54321"
}
},
"triggers": [
{
"type": "HOT_FOLDER",
"data": {
"source": {
"storageProfileId": "11111111-12345-abccd-12345"
}
}
}
]
}
]
}"""

MANUAL_JOB = """{
"name": "Manual Job",
"actions": [
{
"type": "TRANSFER",
"data": {
"source": {
"storageProfileId": "3a613423-5b7a-4e8d-943b-85eb4e0e6fe0"
},
"destination": {
"storageProfileId": "4c1659d5-6452-4cb6-b400-098db2201895"
}
}
}
]
}"""

ALL_CONTENT = """{
"objects": [
{
"relativePath": "/",
"isDirectory": true
}
]
}"""

SELECTED = """{
"objects": [
{
"relativePath": "/example.mp4",
"sizeInBytes": 104857600
},
{
"relativePath": "/path/to/example.mov",
"sizeInBytes": 104857600
},
{
"relativePath": "/path/to/folder",
"isDirectory": true
}
]
}"""


class Curl:
    """Sends what the seeds' curl lines send: a method, the two headers, a raw body."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        self.http = http
        self.base_url = base_url
        self.token = ""

    async def __call__(self, method: str, path: str, data: str | None = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        async with self.http.request(
            method, self.base_url + path, data=data, headers=headers
        ) as response:
            assert response.status == 200, (path, await response.text())
            return await response.json()


async def test_seed_bodies_work_verbatim(
    emulator: EmulatorServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Token, endpoints, profiles, hot folder and manual jobs and both delivery bodies work."""
    curl = Curl(http, emulator.url)
    credentials = CREDENTIALS.replace("<your client_id>", "demo").replace(
        "<your client_secret>", "demo-secret"
    )
    token = await curl("POST", "/oauth/token", credentials)
    assert (token["expires_in"], token["token_type"]) == (3600, "Bearer")
    curl.token = token["access_token"]
    endpoint_id = (await curl("GET", "/v1/endpoints"))["items"][0]["endpointId"]
    profile_body = STORAGE_PROFILE.replace("11111111-12345-abccd-12345", endpoint_id)
    example = await curl("POST", "/v1/storageProfiles", profile_body)
    assert example["url"] == "file:///path/to/folder"
    src, dst = tmp_path / "src", tmp_path / "dst"
    ids = []
    for folder in (src, dst):
        body = profile_body.replace("file:///path/to/folder", folder.as_uri())
        ids.append((await curl("POST", "/v1/storageProfiles", body))["storageProfileId"])
    listed = (await curl("GET", "/v1/storageProfiles"))["items"]
    assert {p["storageProfileId"] for p in listed} == {example["storageProfileId"], *ids}

    hot = HOT_FOLDER_JOB.replace("11111111-12345-abccd-12345", ids[0]).replace(
        "11111111-12345-abccd-54321", ids[1]
    )
    assert (await curl("POST", "/v1/jobs", hot))["triggerTypes"] == ["HOT_FOLDER"]
    manual = MANUAL_JOB.replace("3a613423-5b7a-4e8d-943b-85eb4e0e6fe0", ids[0]).replace(
        "4c1659d5-6452-4cb6-b400-098db2201895", ids[1]
    )
    job_id = (await curl("POST", "/v1/jobs", manual))["jobId"]
    assert job_id in [j["jobId"] for j in (await curl("GET", "/v1/jobs"))["items"]]

    await _deliver_seed_bodies(curl, job_id, src, dst)


async def _deliver_seed_bodies(curl: Curl, job_id: str, src: Path, dst: Path) -> None:
    """Seed 001/002 delivery bodies: selected files and folders, then all profile content."""
    for relative in ("example.mp4", "path/to/example.mov", "path/to/folder/inside.wav"):
        (src / relative).parent.mkdir(parents=True, exist_ok=True)
        (src / relative).write_bytes(relative.encode())
    for body, expected in ((SELECTED, (3, 0)), (ALL_CONTENT, (0, 3))):
        created = await curl("POST", f"/v1/jobs/{job_id}/deliveries", body)
        assert created["deliveryId"]
        assert created["objects"]
        path = f"/v1/jobs/{job_id}/deliveries/{created['deliveryId']}"

        async def finished(path: str = path) -> dict[str, Any] | None:
            delivery: dict[str, Any] = await curl("GET", path)
            return delivery if delivery["state"] in ("COMPLETED", "FAILED") else None

        done = await wait_for(finished)
        summary = done["deliverySummary"]
        assert (summary["transferred"]["count"], summary["skipped"]["count"]) == expected
        assert done["state"] == "COMPLETED"
        transfer = done["transfers"][0]["transferId"]
        assert (await curl("GET", f"/v1/jobs/{job_id}/transfers/{transfer}"))[
            "state"
        ] == "COMPLETED"
    assert (dst / "path/to/folder/inside.wav").read_bytes() == b"path/to/folder/inside.wav"
