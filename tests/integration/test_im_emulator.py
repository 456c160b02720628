"""The Integration Manager emulator over real HTTP: tokens, job configs, runs, faults, CLI."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from jetwatch.emulators.im import (
    ImEmulatorServer,
    UserSpec,
    add_arguments,
    config_from_args,
    parse_user,
    serve,
)
from tests.fixtures.emulator import wait_for
from tests.fixtures.im_helpers import IM_PASSWORD, IM_USER, ImApi, ImFactory


async def wait_status(api: ImApi, run_id: str, *wanted: str) -> dict[str, Any]:
    """The run once its status is one of ``wanted``."""

    async def probe() -> dict[str, Any] | None:
        run: dict[str, Any] = await api.ok("GET", f"/api/jobs/{run_id}")
        return run if run["status"] in wanted else None

    return await wait_for(probe)


async def start_run(api: ImApi, config_id: str, variables: dict[str, Any]) -> dict[str, Any]:
    status, run = await api.call(
        "POST", f"/api/jobconfigs/{config_id}/jobs", {"variables": variables}
    )
    assert status == 201, run
    created: dict[str, Any] = run
    return created


async def test_login_answers_the_seed_shape(im_api: ImApi) -> None:
    """POST /api/login answers access and refresh tokens, bearer type, expires_in 36000."""
    answer = await im_api.login()
    assert set(answer) == {"access_token", "token_type", "refresh_token", "expires_in"}
    assert (answer["token_type"], answer["expires_in"]) == ("bearer", 36000.0)
    assert answer["access_token"] != answer["refresh_token"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"username": IM_USER, "password": "wrong"}, 401),
        ({"username": "nobody", "password": IM_PASSWORD}, 401),
        ({"username": IM_USER}, 400),
        (["not", "an", "object"], 400),
    ],
)
async def test_bad_logins_are_refused(im_api: ImApi, body: Any, status: int) -> None:
    """Wrong credentials are 401, malformed bodies 400, both with a message."""
    answer_status, answer = await im_api.call("POST", "/api/login", body, auth=False)
    assert answer_status == status
    assert answer["message"]


async def test_refresh_rotates_the_pair(im_api: ImApi) -> None:
    """A refresh token buys a new pair once; the new access token works."""
    first = await im_api.login()
    status, second = await im_api.call(
        "POST", "/api/login/refresh", {"refresh_token": first["refresh_token"]}, auth=False
    )
    assert status == 200
    assert second["access_token"] != first["access_token"]
    assert (await im_api.call("GET", "/api/jobconfigs", token=second["access_token"]))[0] == 200
    again = await im_api.call(
        "POST", "/api/login/refresh", {"refresh_token": first["refresh_token"]}, auth=False
    )
    assert again[0] == 401


async def test_tokens_are_required_and_expire(im_api: ImApi) -> None:
    """No, unknown or expired tokens get 401; the refresh token outlives an access token."""
    assert (await im_api.call("GET", "/api/jobconfigs", auth=False))[0] == 401
    assert (await im_api.call("GET", "/api/jobconfigs", token="made-up"))[0] == 401
    pair = await im_api.login()
    assert (await im_api.admin("POST", "tokens/expire"))["expired"] >= 1
    status, body = await im_api.call("GET", "/api/jobconfigs")
    assert (status, body["message"]) == (401, "token expired")
    refreshed = await im_api.call(
        "POST", "/api/login/refresh", {"refresh_token": pair["refresh_token"]}, auth=False
    )
    assert refreshed[0] == 200
    await im_api.admin("POST", "tokens/expire", {"refresh": True})
    refused = await im_api.call(
        "POST", "/api/login/refresh", {"refresh_token": refreshed[1]["refresh_token"]}, auth=False
    )
    assert refused[0] == 401


async def test_short_token_ttl_expires_by_itself(
    im_factory: ImFactory, im_http: aiohttp.ClientSession
) -> None:
    """With token_ttl_s tiny, a token stops working on its own."""
    server = await im_factory(token_ttl_s=0.05)
    api = ImApi(im_http, server.url)
    assert (await api.login())["expires_in"] == 0.05

    async def refused() -> bool | None:
        return True if (await api.call("GET", "/api/jobconfigs"))[0] == 401 else None

    assert await wait_for(refused)


async def test_job_configs_follow_the_seed(im_api: ImApi, im_server: ImEmulatorServer) -> None:
    """Create, read, list and update a job config with seed 003's fields."""
    status, created = await im_api.call(
        "POST", "/api/jobconfigs", {"active": True, "name": "sample config", "description": "d"}
    )
    assert status == 201
    config_id = created["id"]
    assert created["href"] == f"{im_server.url}/api/jobconfigs/{config_id}"
    assert created["user"]["name"] == created["createdByUser"]["name"] == IM_USER
    assert {"created", "lastModified", "lastModifiedByUser"} <= set(created)
    assert await im_api.ok("GET", f"/api/jobconfigs/{config_id}") == created
    assert [c["id"] for c in await im_api.ok("GET", "/api/jobconfigs")] == [config_id]
    runtime = {"packageName": "samplePackage.djar", "entryPoint": "integrateXYZ.process"}
    updated = await im_api.ok(
        "PUT", f"/api/jobconfigs/{config_id}", {"active": False, "runtimeConfig": runtime}
    )
    assert updated["active"] is False
    assert updated["runtimeConfig"] == {
        **runtime,
        "packagePrefix": f"configuration\\{config_id}",
        "packageArtifactOverride": False,
    }
    assert (await im_api.call("GET", "/api/jobconfigs/999"))[0] == 404
    assert (await im_api.call("POST", "/api/jobconfigs", {"name": ""}))[0] == 400


async def test_run_moves_queued_running_finished_and_copies_files(
    im_factory: ImFactory, im_http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A run is QUEUED, then RUNNING, then FINISHED, and its files land in output_dir."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.csv").write_text("1,2\n")
    (src / "sub" / "b.csv").write_text("3,4\n")
    server = await im_factory(run_step_s=0.2, source_root=src)
    api = ImApi(im_http, server.url)
    await api.login()
    config_id = await api.config()
    files = f"{src / 'a.csv'}\n{src / 'sub' / 'b.csv'}"
    run = await start_run(api, config_id, {"JETWATCH_FILES": files, "N": 2})
    assert run["status"] == "QUEUED"
    assert run["href"] == f"{server.url}/api/jobs/{run['id']}"
    assert run["jobConfig"]["id"] == config_id
    assert run["submittedByUser"]["name"] == IM_USER
    assert run["variables"] == {"JETWATCH_FILES": files, "N": "2"}
    assert {"scheduled", "finalDestinationId"} <= set(run)
    await wait_status(api, run["id"], "RUNNING")
    finished = await wait_status(api, run["id"], "FINISHED", "FAILED")
    assert finished["status"] == "FINISHED"
    out = tmp_path / "im-out"
    assert (out / "a.csv").read_text() == "1,2\n"
    assert (out / "sub" / "b.csv").read_text() == "3,4\n"


async def test_runs_fail_for_missing_or_injected_files(im_api: ImApi, tmp_path: Path) -> None:
    """A missing file or a fail_paths match makes the run FAILED with an errorMessage."""
    config_id = await im_api.config()
    good = tmp_path / "good.csv"
    good.write_text("x")
    missing = await start_run(im_api, config_id, {"JETWATCH_FILES": str(tmp_path / "nope.csv")})
    failed = await wait_status(im_api, missing["id"], "FINISHED", "FAILED")
    assert failed["status"] == "FAILED"
    assert "file not found" in failed["errorMessage"]
    await im_api.admin("POST", "faults", {"fail_paths": ["*good*"]})
    injected = await start_run(im_api, config_id, {"JETWATCH_FILES": f'["{good}"]'})
    failed = await wait_status(im_api, injected["id"], "FINISHED", "FAILED")
    assert "injected failure" in failed["errorMessage"]


async def test_inactive_config_refuses_runs(im_api: ImApi) -> None:
    """An inactive job config answers 400 with a message; active again, it runs."""
    config_id = await im_api.config(active=False)
    status, body = await im_api.call("POST", f"/api/jobconfigs/{config_id}/jobs")
    assert status == 400
    assert "not active" in body["message"]
    await im_api.ok("PUT", f"/api/jobconfigs/{config_id}", {"active": True})
    run = await start_run(im_api, config_id, {})
    assert (await wait_status(im_api, run["id"], "FINISHED", "FAILED"))["status"] == "FINISHED"


async def test_runs_of_a_config_are_listed_newest_first_in_pages(im_api: ImApi) -> None:
    """GET /api/jobconfigs/{id}/jobs pages the runs newest first, with their variables."""
    config_id = await im_api.config()
    other = await im_api.config("other")
    ids = [(await start_run(im_api, config_id, {"I": i}))["id"] for i in range(3)]
    await start_run(im_api, other, {})
    page = await im_api.ok("GET", f"/api/jobconfigs/{config_id}/jobs?offset=0&limit=2")
    assert (page["totalResultCount"], page["offset"], page["limit"]) == (3, 0, 2)
    assert [r["id"] for r in page["items"]] == [ids[2], ids[1]]
    assert page["items"][0]["variables"] == {"I": "2"}
    rest = await im_api.ok("GET", f"/api/jobconfigs/{config_id}/jobs?offset=2&limit=2")
    assert [r["id"] for r in rest["items"]] == [ids[0]]
    assert (await im_api.call("GET", f"/api/jobconfigs/{config_id}/jobs?limit=0"))[0] == 400
    received = await im_api.admin("GET", "runs")
    assert [r["id"] for r in received["items"]][:3] == ids


async def test_hold_and_forced_status(im_api: ImApi) -> None:
    """Held runs stay QUEUED; a forced CANCELLED (or unknown) status is never overwritten."""
    config_id = await im_api.config()
    await im_api.admin("POST", "hold", {"hold": True})
    run = await start_run(im_api, config_id, {})
    forced = await im_api.admin("POST", f"runs/{run['id']}/status", {"status": "CANCELLED"})
    assert forced["status"] == "CANCELLED"
    other = await start_run(im_api, config_id, {})
    await im_api.admin("POST", f"runs/{other['id']}/status", {"status": "WAITING_FOR_GODOT"})
    await im_api.admin("POST", "hold", {"hold": False})
    third = await start_run(im_api, config_id, {})
    await wait_status(im_api, third["id"], "FINISHED")
    assert (await im_api.ok("GET", f"/api/jobs/{run['id']}"))["status"] == "CANCELLED"
    assert (await im_api.ok("GET", f"/api/jobs/{other['id']}"))["status"] == "WAITING_FOR_GODOT"
    assert (await im_api.call("GET", "/api/jobs/unknown"))[0] == 404


async def test_faults_answer_errors_and_drop_connections(
    im_api: ImApi, im_server: ImEmulatorServer, im_http: aiohttp.ClientSession
) -> None:
    """429 carries Retry-After on every API path (login too); drops close the connection."""
    await im_api.admin("POST", "faults", {"status_rates": {"429": 1}})
    async with im_http.get(
        f"{im_server.url}/api/jobconfigs", headers={"Authorization": f"Bearer {im_api.token}"}
    ) as response:
        assert (response.status, response.headers["Retry-After"]) == (429, "1")
    assert (await im_api.call("POST", "/api/login", {}, auth=False))[0] == 429
    assert (await im_api.admin("GET", "faults"))["status_rates"] == {"429": 1}
    await im_api.admin("POST", "faults", {"drop_rate": 1.0, "drop_phase": "before"})
    with pytest.raises(aiohttp.ClientConnectionError):
        await im_api.call("GET", "/api/jobconfigs")
    await im_api.admin("POST", "faults", {})
    assert (await im_api.call("GET", "/api/jobconfigs"))[0] == 200
    stats = await im_api.admin("GET", "stats")
    assert stats["dropped"] >= 1  # aiohttp retries a dropped keep-alive GET once
    assert stats["statuses"]["429"] == 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jetwatch emulator --api im")
    add_arguments(parser)
    return parser


def test_cli_defaults_and_options() -> None:
    """Defaults follow seed 003 (36000 s tokens, admin user); options reach the config."""
    config = config_from_args(_parser().parse_args([]))
    assert (config.port, config.token_ttl_s, config.users) == (
        8080,
        36000.0,
        [UserSpec("admin", "admin-secret")],
    )
    argv = "--port 0 --output-dir out --token-ttl 5 --run-step 0 --files-variable F"
    args = _parser().parse_args([*argv.split(), "--user", "a:b", "--user", "c:d:e"])
    config = config_from_args(args)
    assert (config.output_dir, config.token_ttl_s, config.run_step_s) == (Path("out"), 5.0, 0.0)
    assert config.files_variable == "F"
    assert config.users == [UserSpec("a", "b"), UserSpec("c", "d:e")]


@pytest.mark.parametrize("argv", [["--user", "nopassword"], ["--port", "x"], ["--token-ttl", "0"]])
def test_cli_bad_options_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Bad values stop argparse with exit code 2 and a message naming the option."""
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args(argv)
    assert exited.value.code == 2
    assert argv[0] in capsys.readouterr().err
    with pytest.raises(ValueError, match="USERNAME:PASSWORD"):
        parse_user(":x")


async def test_serve_runs_until_sigterm() -> None:
    """serve() answers HTTP until SIGTERM, then stops and returns 0."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    task = asyncio.create_task(serve(_parser().parse_args(["--port", str(port)])))
    async with aiohttp.ClientSession() as http:

        async def answering() -> bool | None:
            try:
                async with http.get(f"http://127.0.0.1:{port}/_emulator/stats") as response:
                    return True if response.status == 200 else None
            except aiohttp.ClientConnectionError:
                assert not task.done(), task
                return None

        await wait_for(answering)
        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(task, timeout=10) == 0
