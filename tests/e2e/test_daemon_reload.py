"""SIGHUP on the daemon process: folders added, changed and removed; a bad file keeps the old."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.daemon import (
    SpawnDaemon,
    daemon_config,
    drop,
    received_paths,
    wait_copied,
    write_toml,
)
from tests.fixtures.emulator import EmulatorFactory, make_manual_job

pytestmark = pytest.mark.slow


async def test_sighup_adds_changes_and_removes_folders_and_rejects_a_bad_file(
    emulator_factory: EmulatorFactory, tmp_path: Path, spawn_daemon: SpawnDaemon
) -> None:
    """Reload keeps deliveries in flight, starts new folders, and survives a broken config."""
    server = await emulator_factory(bandwidth_bps=200_000)
    job_id, src, dst = await make_manual_job(server, tmp_path)
    a, b = src / "a", src / "b"
    a.mkdir()
    b.mkdir()

    def folder(path: Path, name: str, **extra: Any) -> dict[str, Any]:
        return {"path": str(path), "job": job_id, "name": name, "profile_root": str(src), **extra}

    path = tmp_path / "c.toml"
    write_toml(path, daemon_config(server.url, tmp_path / "ledger.db", [folder(a, "a")]))
    daemon = await spawn_daemon(path)
    await daemon.wait_event("job_ready")
    # A delivery that takes ~1 s at 200 kB/s is in flight while folder "a" goes away.
    drop(a, ["big.mov"], size=200_000)
    await daemon.wait_event("delivery_submitted")
    write_toml(path, daemon_config(server.url, tmp_path / "ledger.db", [folder(b, "b")]))
    daemon.send(signal.SIGHUP)
    await daemon.wait_event("config_reloaded")
    removed = await daemon.wait_event("folder_removed")
    assert removed["folder"] == "a"
    added = await daemon.wait_event("folder_added")
    assert added["folder"] == "b"
    await wait_copied(src, dst, ["a/big.mov"])
    await daemon.wait_event("delivery_completed")
    drop(b, ["new-folder.txt"])
    await wait_copied(src, dst, ["b/new-folder.txt"])

    # A broken file: logged with the key, the running configuration stays.
    bad = daemon_config(server.url, tmp_path / "ledger.db", [folder(b, "b", settle_secs=1)])
    write_toml(path, bad)
    daemon.send(signal.SIGHUP)
    rejected = await daemon.wait_event("reload_rejected")
    assert any("folders[0].settle_secs" in p for p in rejected["problems"])
    drop(b, ["still-works.txt"])
    await wait_copied(src, dst, ["b/still-works.txt"])

    # A changed folder restarts its intake only.
    changed_cfg = [folder(b, "b", settle_seconds=0.1), folder(a, "a")]
    write_toml(path, daemon_config(server.url, tmp_path / "ledger.db", changed_cfg))
    daemon.send(signal.SIGHUP)
    assert (await daemon.wait_event("folder_changed"))["folder"] == "b"
    await daemon.wait_event("config_reloaded", after=1)
    drop(b, ["after-change.txt"])
    drop(a, ["back-again.txt"])
    await wait_copied(src, dst, ["b/after-change.txt", "a/back-again.txt"])

    daemon.send(signal.SIGTERM)
    assert await daemon.wait_exit(15) == 0
    sent = await received_paths(server.url)
    expected = ["a/big.mov", "b/new-folder.txt", "b/still-works.txt"]
    expected += ["b/after-change.txt", "a/back-again.txt"]
    assert sorted(sent) == sorted(f"/{p}" for p in expected)
