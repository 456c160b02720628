"""The daemon as a process whose wall clock steps an hour back (and forward again) while a
file settles: intake and delivery go on, because every duration runs on the monotonic clock."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from jetwatch.emulators.jet import EmulatorServer
from tests.fixtures.daemon import (
    SpawnDaemon,
    daemon_config,
    drop,
    received_paths,
    wait_copied,
    write_toml,
)
from tests.fixtures.emulator import wait_for
from tests.fixtures.host import SteppedClock

pytestmark = pytest.mark.slow

Job = tuple[EmulatorServer, str, Path, Path]


async def test_clock_steps_back_and_forward(
    emulator_job: Job, tmp_path: Path, spawn_daemon: SpawnDaemon
) -> None:
    """A step back of an hour while a file settles, files dropped after it, a step forward
    again: everything is delivered exactly once, within seconds, not an hour."""
    server, job_id, src, dst = emulator_job
    clock = SteppedClock(tmp_path)
    folder = {"path": str(src), "job": job_id, "name": "in", "settle_seconds": 1.5}
    config = write_toml(tmp_path / "c.toml", daemon_config(server.url, tmp_path / "l.db", [folder]))
    daemon = await spawn_daemon(config, clock.env)
    await daemon.wait_event("ready")

    drop(src, ["before.bin"])
    await wait_copied(src, dst, ["before.bin"])
    drop(src, ["settling.bin"])
    clock.step("-1h")
    drop(src, ["after-step.bin", "sub/after-step.bin"])
    await wait_copied(src, dst, ["settling.bin", "after-step.bin", "sub/after-step.bin"], 20)
    # The daemon really ran on the stepped clock: its log dates went back by an hour.
    stamps = [datetime.fromisoformat(e["timestamp"]) for e in daemon.events()]
    assert any(b < a - timedelta(minutes=50) for a, b in itertools.pairwise(stamps))

    clock.step("+0")
    drop(src, ["forward.bin"])
    await wait_copied(src, dst, ["forward.bin"], 20)

    async def counted() -> Counter[str] | None:
        counts = Counter(await received_paths(server.url))
        return counts if len(counts) == 5 else None

    counts = await wait_for(counted, timeout_s=10)
    assert set(counts.values()) == {1}, counts
    assert daemon.alive
