"""End to end under API trouble: short tokens, 429/503 storms, a paused job, a failing path."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from jetwatch.emulators.jet import EmulatorServer
from jetwatch.metrics import REGISTRY
from tests.fixtures.emulator import Api, EmulatorFactory, make_manual_job
from tests.fixtures.pipeline import (
    all_done,
    arrived,
    duplicates,
    emulator_stats,
    held_files_are,
    make_settings,
    path_counts,
    received,
    running_daemon,
    set_faults,
    wait_arrived,
    wait_isolated,
    wait_true,
    write_file,
)

Job = tuple[EmulatorServer, str, Path, Path]


async def drop_in_waves(src: Path, waves: int, per_wave: int, pause_s: float) -> list[str]:
    """Write ``waves`` groups of files ``pause_s`` apart; their relative paths."""
    names: list[str] = []
    for w in range(waves):
        for i in range(per_wave):
            rel = f"wave{w}/file-{i:02d}.bin"
            write_file(src / rel, os.urandom(1024 + 97 * i))
            names.append(rel)
        await asyncio.sleep(pause_s)
    return names


async def test_three_second_tokens_over_long_deliveries(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """With 3 s tokens and slow transfers spanning several lifetimes, all arrive once."""
    server = await emulator_factory(token_ttl_s=3, bandwidth_bps=400_000)
    job_id, src, dst = await make_manual_job(server, tmp_path)
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id)
    async with running_daemon(settings) as daemon:
        big = {f"big-{i}.mov": os.urandom(900_000) for i in range(3)}  # ~7 s at 400 kB/s
        for rel, data in big.items():
            write_file(src / rel, data)
        names = [*big, *await drop_in_waves(src, waves=4, per_wave=3, pause_s=1.5)]
        await wait_arrived(src, dst, names, timeout_s=45)
        await wait_true(lambda: all_done(daemon, len(names)), what="all done")
    stats = await emulator_stats(server)
    assert stats["requests"].get("POST /oauth/token", 0) >= 3  # several lifetimes passed
    deliveries = await received(server)
    assert duplicates(deliveries) == {}
    assert set(path_counts(deliveries)) == {"/" + n for n in names}


async def test_429_and_503_storm(emulator_job: Job, tmp_path: Path) -> None:
    """While a quarter of all API answers are 429 or 503, every file is delivered once."""
    server, job_id, src, dst = emulator_job
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id, max_files=5)
    async with running_daemon(settings) as daemon:
        await set_faults(server, status_rates={"429": 0.15, "503": 0.1}, seed=7)
        names = await drop_in_waves(src, waves=3, per_wave=6, pause_s=0.5)
        await wait_arrived(src, dst, names, timeout_s=60)
        await wait_true(lambda: all_done(daemon, len(names)), timeout_s=30, what="all done")
        await set_faults(server)
    stats = await emulator_stats(server)
    assert int(stats["statuses"].get("429", 0)) > 0
    assert int(stats["statuses"].get("503", 0)) > 0
    deliveries = await received(server)
    assert duplicates(deliveries) == {}
    assert set(path_counts(deliveries)) == {"/" + n for n in names}


async def test_paused_job_holds_batches_and_resumes_by_itself(
    emulator_job: Job, api: Api, tmp_path: Path
) -> None:
    """Files for a paused job are HELD (ledger and status), then sent once it resumes."""
    server, job_id, src, dst = emulator_job
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id)
    async with running_daemon(settings) as daemon:
        await wait_true(
            lambda: daemon.registry.status(settings.folders[0].label).usable, what="job resolved"
        )
        await api.ok("PATCH", f"/v1/jobs/{job_id}", {"paused": True})
        names = [f"held-{i}.txt" for i in range(4)]
        for name in names:
            write_file(src / name, name.encode())
        await wait_true(
            lambda: held_files_are(daemon, len(names)),
            what="all files held",
        )
        status = await daemon.status_json()
        assert sum(h["files"] for h in status["held"]) == len(names), status["held"]
        assert await received(server) == []
        await api.ok("PATCH", f"/v1/jobs/{job_id}", {"paused": False})
        await wait_arrived(src, dst, names)
        await wait_true(lambda: all_done(daemon, len(names)), what="all done")
        assert await daemon.ledger.held_batches() == []
    assert path_counts(await received(server)) == {"/" + n: 1 for n in names}


async def test_failing_path_is_isolated_and_given_up(emulator_job: Job, tmp_path: Path) -> None:
    """A path the destination always refuses ends FAILED in failed_dir; its batch-mates arrive."""
    server, job_id, src, dst = emulator_job
    failed_dir = tmp_path / "failed"
    settings = make_settings(
        server.url,
        src,
        tmp_path / "ledger.db",
        job_id,
        max_attempts=2,
        retry_backoff_seconds=0.0,
        failed_dir=failed_dir,
        batch_linger_seconds=0.5,
    )
    label = settings.folders[0].label
    await set_faults(server, fail_paths=["*.bad"])
    good = [f"sub/good-{i}.txt" for i in range(5)]
    async with running_daemon(settings) as daemon:
        for rel in [*good, "sub/broken.bad"]:
            write_file(src / rel, rel.encode() * 10)
        await wait_arrived(src, dst, good)
        await wait_isolated(daemon, failed_dir, "sub/broken.bad", len(good))
        failures = (await daemon.status_json())["recent_failures"]
    assert [f["relpath"] for f in failures] == ["sub/broken.bad"], failures
    assert failures[0]["attempts"] >= 2
    assert not (src / "sub" / "broken.bad").exists()
    assert not (dst / "sub" / "broken.bad").exists()
    assert arrived(src, dst, good) == set(good)
    value = REGISTRY.get_sample_value("jetwatch_files_failed_total", {"folder": label})
    assert value == 1.0
    # The bad file was isolated: it failed alone (a batch of its own) at least max_attempts times.
    alone = [
        d
        for d in await received(server)
        if [o["relativePath"] for o in d["objects"]] == ["/sub/broken.bad"]
    ]
    assert len(alone) >= 2
    assert all(d["state"] == "FAILED" for d in alone)
