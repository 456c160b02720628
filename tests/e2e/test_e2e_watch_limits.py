"""The daemon as a process under a real inotify watch limit: the tree outgrows it while
running, and every file is still delivered, with the folder visibly in scan mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jetwatch.emulators.jet import EmulatorServer
from tests.fixtures.daemon import (
    SpawnDaemon,
    daemon_config,
    drop,
    get_json,
    get_text,
    metric,
    received_paths,
    run_cli,
    wait_copied,
    write_toml,
)
from tests.fixtures.emulator import wait_for
from tests.fixtures.host import watch_limited

pytestmark = pytest.mark.slow

Job = tuple[EmulatorServer, str, Path, Path]


async def test_watch_limit_reached_while_running(
    emulator_job: Job, tmp_path: Path, spawn_daemon: SpawnDaemon
) -> None:
    """Two folders, a user limit of 4 watches: "big" does not fit at start (scan at once),
    "small" fits, then grows by 6 directories: scan at once, said in /readyz, status,
    metrics and the log; all 30 new files delivered once; events are not claimed again."""
    server, job_id, src, dst = emulator_job
    small, big = src / "small", src / "big"
    (small / "a").mkdir(parents=True)
    for i in range(5):
        (big / f"d{i}").mkdir(parents=True)
    folder: dict[str, Any] = {"job": job_id, "scan_interval_seconds": 0.5}
    cfg = daemon_config(
        server.url,
        tmp_path / "ledger.db",
        [
            {**folder, "path": str(small), "name": "small", "profile_root": str(src)},
            {**folder, "path": str(big), "name": "big", "profile_root": str(src)},
        ],
    )
    config = write_toml(tmp_path / "c.toml", cfg)
    daemon = await spawn_daemon(config, prefix=watch_limited(4))
    url = await daemon.ops_url()

    async def watch(label: str) -> dict[str, Any]:
        _, body = await get_json(f"{url}/readyz")
        folders: dict[str, dict[str, Any]] = body["folders"]
        return folders[label]

    async def mode_is(label: str, mode: str) -> dict[str, Any] | None:
        state = await watch(label)
        return state if state["mode"] == mode and state["first_scan_done"] else None

    big_state = await wait_for(lambda: mode_is("big", "scan"), timeout_s=20)
    assert "exceed" in big_state["reason"]
    assert "max_user_watches=" in big_state["reason"]
    await wait_for(lambda: mode_is("small", "events"), timeout_s=20)

    names = [f"n{d}/f{i}.bin" for d in range(6) for i in range(5)]
    drop(small, names)
    state = await wait_for(lambda: mode_is("small", "scan"), timeout_s=20)
    assert "have no inotify watch" in state["reason"], state
    assert "max_user_watches" in state["reason"]
    await wait_copied(small, dst / "small", names, timeout_s=30)
    assert sorted(p for p in await received_paths(server.url) if p.startswith("/small/")) == sorted(
        f"/small/{n}" for n in names
    )

    text = await get_text(f"{url}/metrics")
    assert metric(text, "jetwatch_watch_mode", folder="small", mode="scan") == 1
    assert metric(text, "jetwatch_watch_mode", folder="small", mode="events") == 0
    assert (metric(text, "jetwatch_watch_failures_total", folder="small") or 0) >= 1

    def fallbacks() -> list[dict[str, Any]]:
        return [
            e for e in daemon.events()
            if e.get("event") == "watch_fallback_to_scan" and e.get("folder") == "small"
        ]  # fmt: skip

    assert fallbacks()[0]["level"] == "error"

    # Events are tried again after a few seconds: the tree no longer fits, so it stays scan.
    async def tried_again() -> dict[str, Any] | None:
        return fallbacks()[1] if len(fallbacks()) > 1 else None

    again = await wait_for(tried_again, timeout_s=30)
    assert "exceed" in again["reason"]
    assert (await watch("small"))["mode"] == "scan"
    status = await run_cli("status", "--config", str(config))
    rows = [x.split() for x in status.stdout.splitlines()]
    assert any(r[:2] == ["small", "scan"] for r in rows), status.stdout
    assert "inotify" in status.stdout
