"""End to end against the Integration Manager emulator: the guarantees the Jet path gives.

Growing file, a burst larger than max_files, status storms and lost answers, a failing
path isolated by bisection, an inactive job config holding batches, and kill -9 of the
daemon process while files flow. Each check counts what the emulator's runs were given.
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path
from typing import Any

import pytest
import structlog

from jetwatch.config.settings import Settings
from jetwatch.config.targets import IntegrationManagerSettings
from jetwatch.emulators.im import ImEmulatorServer
from tests.fixtures.daemon import write_toml
from tests.fixtures.pipeline import (
    FAST_FOLDER,
    DaemonProcess,
    all_done,
    arrived,
    grow_file,
    held_files_are,
    kill_repeatedly,
    produce,
    running_daemon,
    wait_arrived,
    wait_isolated,
    wait_ledger_done,
    wait_true,
    write_file,
)
from tests.fixtures.targets import (
    FAST_CHECKS,
    ImSetup,
    im_call,
    im_runs,
    im_section,
    run_duplicates,
    run_file_counts,
    target_settings,
)

IM = "integration-manager"
KILLS = 4


def settings_for(
    server: ImEmulatorServer,
    config_id: str,
    src: Path,
    tmp: Path,
    *,
    im: dict[str, Any] | None = None,
    **folder: Any,
) -> Settings:
    """One IM folder running ``config_id``, fast timings, the ledger in ``tmp``."""
    section = IntegrationManagerSettings(**im_section(server, config_id, **(im or {})))
    return target_settings(src, tmp / "ledger.db", IM, integration_manager=section, **folder)


async def test_growing_file_is_run_once_complete(im_job: ImSetup, tmp_path: Path) -> None:
    """A file written for longer than settle_seconds reaches one run, at its final size."""
    server, config_id, src, dst = await im_job()
    settings = settings_for(server, config_id, src, tmp_path, settle_seconds=0.4)
    async with running_daemon(settings) as daemon:
        path = src / "growing.mxf"
        await grow_file(path, 1.6)  # four times settle_seconds
        await wait_arrived(src, dst, ["growing.mxf"])
        await wait_true(lambda: all_done(daemon, 1), what="post-action done")
    runs = await im_runs(server)
    assert run_file_counts(runs, src) == {"growing.mxf": 1}
    assert [r["status"] for r in runs] == ["FINISHED"]
    assert (dst / "growing.mxf").stat().st_size == path.stat().st_size


async def test_burst_larger_than_max_files(im_job: ImSetup, tmp_path: Path) -> None:
    """300 files with max_files=50: every run has at most 50 files, each file is run once."""
    server, config_id, src, dst = await im_job()
    settings = settings_for(server, config_id, src, tmp_path, max_files=50, settle_seconds=0.2)
    names = [f"burst/{i // 50:02d}/file-{i:03d}.dat" for i in range(300)]
    async with running_daemon(settings) as daemon:
        for i, rel in enumerate(names):
            write_file(src / rel, f"content {i}\n".encode())
        await wait_true(lambda: all_done(daemon, len(names)), timeout_s=40, what="all done")
    runs = await im_runs(server)
    assert max(len(r["files"]) for r in runs) <= 50
    assert len(runs) >= 6
    assert run_duplicates(runs, src) == {}
    assert set(run_file_counts(runs, src)) == set(names)
    assert arrived(src, dst, names) == set(names)


async def drop_waves(src: Path, prefix: str, waves: int, per_wave: int) -> list[str]:
    """Write ``waves`` groups of files a moment apart; their relative paths."""
    names = []
    for w in range(waves):
        for i in range(per_wave):
            rel = f"{prefix}{w}/file-{i:02d}.bin"
            write_file(src / rel, os.urandom(1024 + 97 * i))
            names.append(rel)
        await asyncio.sleep(0.4)
    return names


async def test_status_storm_and_expired_tokens(im_job: ImSetup, tmp_path: Path) -> None:
    """429/503 on a quarter of all calls and tokens expired mid-way: each file is run once."""
    server, config_id, src, dst = await im_job()
    settings = settings_for(server, config_id, src, tmp_path, max_files=5)
    async with running_daemon(settings) as daemon:
        faults = {"status_rates": {"429": 0.15, "503": 0.1}, "seed": 7}
        await im_call(server.url, "POST", "/_emulator/faults", faults)
        names = await drop_waves(src, "wave", waves=2, per_wave=6)
        await im_call(server.url, "POST", "/_emulator/tokens/expire", {"refresh": True})
        names += await drop_waves(src, "late", waves=1, per_wave=6)
        await wait_arrived(src, dst, names, timeout_s=45)
        await wait_true(lambda: all_done(daemon, len(names)), timeout_s=30, what="all done")
        await im_call(server.url, "POST", "/_emulator/faults", {})
    stats = await im_call(server.url, "GET", "/_emulator/stats")
    assert int(stats["statuses"].get("429", 0)) > 0
    assert int(stats["statuses"].get("503", 0)) > 0
    assert int(stats["requests"].get("POST /api/login", 0)) >= 2  # logged in again
    runs = await im_runs(server)
    assert run_duplicates(runs, src) == {}
    assert set(run_file_counts(runs, src)) == set(names)


async def test_lost_answer_is_adopted_once_the_api_answers(im_job: ImSetup, tmp_path: Path) -> None:
    """A run POST took effect but its answer was lost while IM could not even be asked: the
    run is found and adopted later, never started again."""
    server, config_id, src, dst = await im_job()
    settings = settings_for(server, config_id, src, tmp_path, im={"max_retries": 1})
    with structlog.testing.capture_logs() as logs:
        async with running_daemon(settings) as daemon:
            label = settings.folders[0].label
            await wait_true(lambda: daemon.registry.status(label).usable, what="config resolved")
            # Every request from now on takes effect, but its answer is lost.
            faults = {"drop_rate": 1.0, "drop_phase": "after"}
            await im_call(server.url, "POST", "/_emulator/faults", faults)
            write_file(src / "doubt.txt", b"in doubt")

            def unresolved() -> bool:
                return any(e["event"] == "in_doubt_unresolved" for e in logs)

            await wait_true(unresolved, what="resolution attempted and failed")
            assert len(await daemon.ledger.in_doubt_batches()) == 1
            await im_call(server.url, "POST", "/_emulator/faults", {})
            await wait_arrived(src, dst, ["doubt.txt"])
            await wait_true(lambda: all_done(daemon, 1), what="done")
    assert any(e["event"] == "in_doubt_adopted" for e in logs)
    assert run_file_counts(await im_runs(server), src) == {"doubt.txt": 1}


async def test_random_lost_answers_never_run_twice(im_job: ImSetup, tmp_path: Path) -> None:
    """A third of all answers lost after the request took effect: still each file run once."""
    server, config_id, src, dst = await im_job()
    settings = settings_for(server, config_id, src, tmp_path, max_files=3)
    names = [f"d/{i:02d}.dat" for i in range(15)]
    with structlog.testing.capture_logs() as logs:
        async with running_daemon(settings) as daemon:
            faults = {"drop_rate": 0.3, "drop_phase": "after", "seed": 3}
            await im_call(server.url, "POST", "/_emulator/faults", faults)
            for i, rel in enumerate(names):
                write_file(src / rel, os.urandom(500 + i))
                if i % 3 == 2:
                    await asyncio.sleep(0.3)
            await wait_arrived(src, dst, names, timeout_s=45)
            await wait_true(lambda: all_done(daemon, len(names)), timeout_s=30, what="done")
            await im_call(server.url, "POST", "/_emulator/faults", {})
    runs = await im_runs(server)
    assert run_duplicates(runs, src) == {}
    assert set(run_file_counts(runs, src)) == set(names)
    stats = await im_call(server.url, "GET", "/_emulator/stats")
    assert stats["dropped"] > 0
    doubts = [e for e in logs if e["event"] == "delivery_outcome_unknown"]
    adopted = [e for e in logs if e["event"] == "in_doubt_adopted"]
    assert len(adopted) == len(doubts)


async def test_failing_path_is_isolated_and_given_up(im_job: ImSetup, tmp_path: Path) -> None:
    """A file every run fails on ends FAILED in failed_dir; its batch-mates arrive once done."""
    server, config_id, src, dst = await im_job()
    failed_dir = tmp_path / "failed"
    settings = settings_for(
        server, config_id, src, tmp_path, max_attempts=2, failed_dir=failed_dir,
        batch_linger_seconds=0.5,
    )  # fmt: skip
    await im_call(server.url, "POST", "/_emulator/faults", {"fail_paths": ["*.bad"]})
    good = [f"sub/good-{i}.txt" for i in range(5)]
    async with running_daemon(settings) as daemon:
        for rel in ["sub/broken.bad", *good]:
            write_file(src / rel, rel.encode() * 10)
        await wait_arrived(src, dst, good)
        await wait_isolated(daemon, failed_dir, "sub/broken.bad", len(good))
        failures = (await daemon.status_json())["recent_failures"]
    assert [f["relpath"] for f in failures] == ["sub/broken.bad"]
    assert "injected failure" in failures[0]["error"]
    runs = await im_runs(server)
    alone = [r for r in runs if [Path(f).name for f in r["files"]] == ["broken.bad"]]
    assert len(alone) >= 2
    assert all(r["status"] == "FAILED" for r in alone)
    assert not (dst / "sub" / "broken.bad").exists()


async def test_inactive_job_config_holds_batches_then_resumes(
    im_job: ImSetup, tmp_path: Path
) -> None:
    """An inactive job config reads as paused: batches are HELD, then run once it is active."""
    server, config_id, src, dst = await im_job()
    settings = settings_for(server, config_id, src, tmp_path)
    label = settings.folders[0].label
    async with running_daemon(settings) as daemon:
        await wait_true(lambda: daemon.registry.status(label).usable, what="config resolved")
        await im_call(server.url, "PUT", f"/api/jobconfigs/{config_id}", {"active": False})
        names = [f"held-{i}.txt" for i in range(3)]
        for name in names:
            write_file(src / name, name.encode())
        await wait_true(
            lambda: held_files_are(daemon, len(names)),
            what="all files held",
        )
        reasons = daemon.readiness().reasons
        assert f"job config {config_id!r} is paused: its batches are held" in reasons
        assert await im_runs(server) == []
        await im_call(server.url, "PUT", f"/api/jobconfigs/{config_id}", {"active": True})
        await wait_arrived(src, dst, names)
        await wait_true(lambda: all_done(daemon, len(names)), what="all done")
    assert run_file_counts(await im_runs(server), src) == dict.fromkeys(names, 1)


@pytest.mark.slow
async def test_kill_9_while_running_loses_and_duplicates_nothing(
    im_job: ImSetup, tmp_path: Path, daemon_processes: list[DaemonProcess]
) -> None:
    """SIGKILLs of the daemon process while files keep arriving: every file is run once."""
    server, config_id, src, dst = await im_job()
    ledger = tmp_path / "state" / "ledger.db"
    folder = {**FAST_FOLDER, "path": str(src), "target": IM, "job": config_id, "max_files": 5}
    config = {
        "jet": {**FAST_CHECKS, "poll_max_seconds": 0.5},
        "integration_manager": im_section(server, config_id),
        "ledger": {"path": str(ledger)},
        "http": {"listen": "127.0.0.1:0"},
        "log": {"level": "info", "format": "json"},
        "daemon": {"shutdown_timeout_seconds": 5.0},
        "folders": [folder],
    }
    path = write_toml(tmp_path / "jetwatch.toml", config)
    rng = random.Random(int(os.environ.get("KILL_SEED", "20240607")))
    # Slow requests, half of them slow after they took effect: kills land both before a run
    # exists and between "run created" and "answer read" (in doubt, to be adopted).
    faults = {"latency_ms": 150, "latency_phase": "random", "seed": 5}
    await im_call(server.url, "POST", "/_emulator/faults", faults)
    names: list[str] = []
    stop = asyncio.Event()
    producer = asyncio.create_task(produce(src, stop, names))
    proc = DaemonProcess(path, tmp_path / "daemon.log")
    daemon_processes.append(proc)
    try:
        await kill_repeatedly(proc, KILLS, rng)
    finally:
        stop.set()
        await producer
    ran_before_restart = len(run_file_counts(await im_runs(server), src))
    proc.start()
    await wait_arrived(src, dst, names, timeout_s=40)
    await wait_ledger_done(ledger, len(names))
    assert proc.stop() == 0, proc.output()[-3000:]
    runs = await im_runs(server)
    counts = run_file_counts(runs, src)
    lost = set(names) - set(counts)
    print(
        f"\nIM kill -9 figures: files={len(names)} kills={KILLS} runs={len(runs)} "
        f"ran_before_last_start={ran_before_restart} lost={len(lost)} "
        f"duplicates={len(run_duplicates(runs, src))} "
        f"in_doubt_adopted={proc.output().count('in_doubt_adopted')} "
        f"in_doubt_resent={proc.output().count('in_doubt_not_found')}"
    )
    assert ran_before_restart > 0
    assert lost == set()
    assert run_duplicates(runs, src) == {}
    assert all(r["status"] == "FINISHED" for r in runs)
    assert arrived(src, dst, names) == set(names)
