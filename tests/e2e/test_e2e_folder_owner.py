"""Two daemons with different ledgers on one folder: one owns it, the other says so and
waits; every file is delivered once, and the second takes over when the first stops."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from jetwatch.emulators.jet import EmulatorServer
from jetwatch.errors import ExitCode
from tests.fixtures.daemon import (
    SpawnDaemon,
    daemon_config,
    drop,
    free_port,
    get_json,
    received_paths,
    run_cli,
    write_toml,
)
from tests.fixtures.emulator import wait_for

pytestmark = pytest.mark.slow

Job = tuple[EmulatorServer, str, Path, Path]


async def test_second_daemon_refuses_the_folder(
    emulator_job: Job, tmp_path: Path, spawn_daemon: SpawnDaemon
) -> None:
    """The second daemon keeps the folder down naming the owner's pid (log, /readyz,
    status); files go once; after the owner stops, the second one delivers."""
    server, job_id, src, _ = emulator_job
    done = tmp_path / "done"
    link = tmp_path / "via-symlink"
    link.symlink_to(src)  # another spelling of the same directory: the same lock

    def config(name: str, path: Path) -> Path:
        folder = {"path": str(path), "job": job_id, "name": "in", "post_action": "move"}
        cfg = daemon_config(
            server.url, tmp_path / f"{name}.db", [{**folder, "done_dir": str(done)}]
        )
        cfg["http"]["listen"] = f"127.0.0.1:{free_port()}"  # for `jetwatch status`
        return write_toml(tmp_path / f"{name}.toml", cfg)

    first_config = config("first", src)
    first = await spawn_daemon(first_config)
    await first.wait_event("ready")
    second_config = config("second", link)
    second = await spawn_daemon(second_config)
    held = await second.wait_event("folder_owned_elsewhere")
    assert held["owner_pid"] == first.pid
    url = await second.ops_url()

    async def down() -> dict[str, Any] | None:
        status, body = await get_json(f"{url}/readyz")
        return body if status == 503 and body["folders"]["in"]["mode"] == "down" else None

    body = await wait_for(down, timeout_s=20)
    assert f"pid {first.pid}" in body["folders"]["in"]["reason"]
    assert any(f"pid {first.pid}" in r for r in body["reasons"])
    status = await run_cli("status", "--config", str(second_config))
    assert f"pid {first.pid}" in status.output
    assert status.code == ExitCode.FAILURE  # answers, not ready: scripts can tell
    first_status = await run_cli("status", "--config", str(first_config))
    assert first_status.code == ExitCode.OK, first_status.output

    names = [f"f{i}.bin" for i in range(20)]
    drop(src, names)

    async def moved(count: int) -> bool | None:
        return True if len(list(done.glob("*.bin"))) == count else None

    await wait_for(lambda: moved(20), timeout_s=30)
    first.send(signal.SIGTERM)
    assert await first.wait_exit() == 0
    await second.wait_event("folder_owned", timeout_s=30)
    drop(src, ["late.bin"])
    await wait_for(lambda: moved(21), timeout_s=30)
    counts = Counter(await received_paths(server.url))
    assert counts == Counter({f"/{n}": 1 for n in [*names, "late.bin"]})
