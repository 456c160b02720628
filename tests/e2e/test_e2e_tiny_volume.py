"""The ledger on a real 2 MB tmpfs: it fills up under intake, intake blocks visibly, space
comes back, and the daemon really resumes: every file delivered once, the WAL bounded."""

from __future__ import annotations

import errno
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from jetwatch.emulators.jet import EmulatorServer
from tests.fixtures.daemon import (
    SpawnDaemon,
    daemon_config,
    drop,
    get_json,
    received_paths,
    write_toml,
)
from tests.fixtures.emulator import wait_for
from tests.fixtures.host import tiny_tmpfs

pytestmark = pytest.mark.slow

Job = tuple[EmulatorServer, str, Path, Path]
FILES = 3000


def fill(volume: Path) -> Path:
    """Write a filler file until the volume is full; returns it."""
    filler = volume / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    refused = 0
    try:
        while not refused:
            try:
                os.write(fd, b"\0" * 16384)
            except OSError as exc:
                refused = exc.errno or -1
    finally:
        os.close(fd)
    assert refused == errno.ENOSPC
    return filler


async def test_ledger_on_a_full_tiny_volume_resumes(
    emulator_job: Job, tmp_path: Path, spawn_daemon: SpawnDaemon
) -> None:
    """3,000 files arrive while the volume is full: /readyz says why; once space is freed,
    all are delivered exactly once (and deleted), and /readyz is ready again."""
    server, job_id, src, _ = emulator_job
    with tiny_tmpfs(tmp_path / "vol") as volume:
        ledger = volume / "ledger.db"
        folder: dict[str, Any] = {"path": str(src), "job": job_id, "name": "in"}
        folder["post_action"] = "delete"
        cfg = daemon_config(server.url, ledger, [{**folder, "max_wait_seconds": 1.0}])
        daemon = await spawn_daemon(write_toml(tmp_path / "c.toml", cfg))
        url = await daemon.ops_url()
        await daemon.wait_event("ready")
        filler = fill(volume)
        names = [f"d{i % 30}/f{i}.bin" for i in range(FILES)]
        drop(src, names, size=100)

        async def blocked() -> list[str] | None:
            status, body = await get_json(f"{url}/readyz")
            reasons: list[str] = body.get("reasons", [])
            return reasons if status == 503 and any("ledger" in r for r in reasons) else None

        await wait_for(blocked, timeout_s=30)
        filler.unlink()

        async def all_gone() -> bool | None:
            left = sum(1 for _ in src.rglob("*.bin"))
            return True if left == 0 else None

        try:
            await wait_for(all_gone, timeout_s=90, interval_s=0.5)
        except AssertionError:
            sizes = {p.name: p.stat().st_size for p in volume.iterdir()}
            raise AssertionError(f"never resumed; the volume holds {sizes}") from None
        counts = Counter(await received_paths(server.url))
        assert len(counts) == FILES
        assert set(counts.values()) == {1}
        status, body = await get_json(f"{url}/readyz")
        assert status == 200, body
        # The WAL stayed within what the volume holds, and was cut back after the checkpoint.
        assert (volume / "ledger.db-wal").stat().st_size <= 1024 * 1024
        assert any(e.get("event") == "ledger_space_recovered" for e in daemon.events())
