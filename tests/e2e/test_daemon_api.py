"""The daemon process when the Jet API is down, refuses the credentials, or the job is paused."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from jetwatch.emulators.jet import EmulatorConfig, EmulatorServer, bootstrap_manual_job
from jetwatch.errors import ExitCode
from tests.fixtures.daemon import (
    SpawnDaemon,
    assert_no_secrets,
    daemon_config,
    drop,
    free_port,
    get_json,
    received_paths,
    run_cli,
    wait_copied,
    write_toml,
)
from tests.fixtures.emulator import ADMIN_ID, ADMIN_SECRET, Api, wait_for

pytestmark = pytest.mark.slow

Job = tuple[EmulatorServer, str, Path, Path]


async def readyz_until(url: str, check: Any, timeout_s: float = 20.0) -> tuple[int, Any]:
    """Poll /readyz until ``check(status, body)`` holds; returns that answer."""

    async def probe() -> tuple[int, Any] | None:
        answer = await get_json(f"{url}/readyz")
        return answer if check(*answer) else None

    return await wait_for(probe, timeout_s=timeout_s, interval_s=0.1)


async def test_api_down_at_start_queues_then_delivers(
    tmp_path: Path, spawn_daemon: SpawnDaemon
) -> None:
    """No API: not ready (503, reasons), files queue; the API comes up: ready and delivered."""
    port = free_port()
    src, dst = tmp_path / "source", tmp_path / "dest"
    src.mkdir()
    dst.mkdir()
    folder = {"path": str(src), "job": "Manual Job", "name": "in"}
    cfg = daemon_config(f"http://127.0.0.1:{port}", tmp_path / "ledger.db", [folder])
    cfg["http"]["listen"] = f"127.0.0.1:{free_port()}"
    path = write_toml(tmp_path / "c.toml", cfg)
    daemon = await spawn_daemon(path)
    url = await daemon.ops_url()
    status, body = await readyz_until(url, lambda s, b: "unreachable" in json.dumps(b))
    assert status == 503
    assert any(r.startswith("Jet API unreachable: POST /oauth/token") for r in body["reasons"])
    assert "job 'Manual Job': not resolved yet" in body["reasons"]
    drop(src, ["early.txt"])

    async def queued() -> dict[str, Any] | None:
        result = await run_cli("status", "--json", "--config", str(path))
        # Not ready: exit 1 (documented), the JSON as always.
        data = json.loads(result.stdout) if result.code == ExitCode.FAILURE else None
        if data and sum(data["folders"][0]["counts"][s] for s in ("STABLE", "BATCHED")) == 1:
            return data
        return None

    data = await wait_for(queued, timeout_s=20, interval_s=0.2)
    assert data["daemon"]["reachable"] is True
    assert data["daemon"]["ready"] is False
    assert data["daemon"]["api"]["ok"] is False
    text = await run_cli("status", "--config", str(path))
    assert "NOT READY" in text.stdout
    print(text.stdout)

    # The API comes up on the very port the daemon keeps trying.
    async with EmulatorServer(EmulatorConfig(port=port, state_dir=tmp_path / "emu")) as server:
        await bootstrap_manual_job(server.url, ADMIN_ID, ADMIN_SECRET, src, dst, "Manual Job")
        status, body = await readyz_until(url, lambda s, b: s == 200)
        assert body["ready"] is True
        await wait_copied(src, dst, ["early.txt"])
        daemon.send(signal.SIGTERM)
        assert await daemon.wait_exit(15) == 0
        assert await received_paths(server.url) == ["/early.txt"]


async def test_bad_credentials_never_crash_loop(
    emulator_job: Job, tmp_path: Path, spawn_daemon: SpawnDaemon
) -> None:
    """Refused credentials: not ready with the reason, retried, the process stays up."""
    server, job_id, src, _ = emulator_job
    wrong = "Wrong-Secret-4ab1d2e9"
    folder = {"path": str(src), "job": job_id}
    cfg = daemon_config(server.url, tmp_path / "ledger.db", [folder], secret=wrong, level="debug")
    daemon = await spawn_daemon(write_toml(tmp_path / "c.toml", cfg))
    url = await daemon.ops_url()
    status, _ = await readyz_until(url, lambda s, b: "refused the credentials" in json.dumps(b))
    assert status == 503
    # Several refused logins later the process is still there, and healthy.
    await daemon.wait_event("jet_api_unavailable")

    async def refused_logins() -> int | None:
        _, stats = await get_json(f"{server.url}/_emulator/stats")
        n = int(stats["statuses"].get("401", 0))
        return n if n >= 4 else None

    await wait_for(refused_logins, timeout_s=20, interval_s=0.1)
    assert daemon.alive
    health_status, _ = await get_json(f"{url}/healthz")
    assert health_status == 200
    daemon.send(signal.SIGTERM)
    assert await daemon.wait_exit(15) == 0
    assert_no_secrets(daemon.text(), wrong)


async def test_paused_job_holds_batches_until_resumed(
    emulator_job: Job, api: Api, tmp_path: Path, spawn_daemon: SpawnDaemon
) -> None:
    """Paused job: /readyz 503 says so, `status` shows the HELD batch; resumed: delivered."""
    server, job_id, src, dst = emulator_job
    await api.ok("PATCH", f"/v1/jobs/{job_id}", {"paused": True})
    folder = {"path": str(src), "job": job_id, "name": "in"}
    cfg = daemon_config(server.url, tmp_path / "ledger.db", [folder])
    cfg["http"]["listen"] = f"127.0.0.1:{free_port()}"
    path = write_toml(tmp_path / "c.toml", cfg)
    daemon = await spawn_daemon(path)
    url = await daemon.ops_url()
    status, body = await readyz_until(url, lambda s, b: "is paused" in json.dumps(b))
    assert status == 503
    assert f"job {job_id!r} is paused: its batches are held" in body["reasons"]
    drop(src, ["held.mov"])

    async def held() -> dict[str, Any] | None:
        result = await run_cli("status", "--json", "--config", str(path))
        data = json.loads(result.stdout) if result.code == ExitCode.FAILURE else None
        return data if data and data["held"] else None

    data = await wait_for(held, timeout_s=20, interval_s=0.2)
    assert data["held"][0]["reason"] == "job paused"
    assert data["daemon"]["jobs"][0]["paused"] is True
    text = await run_cli("status", "--config", str(path))
    assert "HELD (1)" in text.stdout
    assert "is paused" in text.stdout
    print(text.stdout)
    refused = await run_cli("ledger", "move-aside", "--config", str(path))
    assert refused.code == 1
    assert "stop it first" in refused.stderr
    assert (tmp_path / "ledger.db").exists()

    await api.ok("PATCH", f"/v1/jobs/{job_id}", {"paused": False})
    await wait_copied(src, dst, ["held.mov"])
    await readyz_until(url, lambda s, b: s == 200)
    daemon.send(signal.SIGTERM)
    assert await daemon.wait_exit(15) == 0
    assert await received_paths(server.url) == ["/held.mov"]
