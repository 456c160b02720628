"""The Jet API as it really is (the default emulator): exactly once without a lookup, paused
backlogs under both modelled outcomes, growing files, folders outside their profile.

Every figure is checked on the destination files and on what the emulator did with each
object (``transferred`` = a copy, ``skipped`` = a second delivery that copied nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

import structlog

from jetwatch.domain.states import FileState, HoldReason
from jetwatch.emulators.jet import EmulatorServer, PausedBacklog
from tests.fixtures.emulator import ApiFor, EmulatorFactory, make_manual_job, set_paused
from tests.fixtures.pipeline import (
    DaemonProcess,
    all_done,
    copy_counts,
    emulator_stats,
    grow_file,
    held_files_are,
    make_settings,
    outcomes_known,
    received,
    running_daemon,
    set_faults,
    state_is,
    wait_arrived,
    wait_ledger_done,
    wait_true,
    write_config,
    write_file,
)

BANDWIDTH_BPS = 200_000


async def _deliveries(server: EmulatorServer, count: int) -> list[dict[str, Any]]:
    async def probe() -> bool:
        return len(await received(server)) >= count

    await wait_true(probe, timeout_s=20, what=f"{count} deliveries received")
    return await received(server)


async def _job_checked(server: EmulatorServer) -> None:
    """The daemon resolved its job and checked the folder (the profile listing is last)."""

    async def checked() -> bool:
        return int((await emulator_stats(server))["requests"].get("GET /v1/storageProfiles", 0)) > 0

    await wait_true(checked, timeout_s=30, what="job checked")


async def _killed_while_the_answer_is_on_its_way(
    server: EmulatorServer, proc: DaemonProcess, src: Path, data: bytes
) -> dict[str, Any]:
    """Start the daemon, let Jet act on its POST but hold the answer back, kill -9 it then."""
    proc.start()
    await _job_checked(server)
    # Every answer from now on comes 3 s after its request took effect.
    await set_faults(server, latency_ms=3000, latency_phase="after")
    write_file(src / "clip.mxf", data)
    [first] = await _deliveries(server, 1)
    proc.kill9()
    await set_faults(server)
    return first


async def test_kill_9_before_the_answer_then_restart_after_the_delivery_finished(
    emulator_factory: EmulatorFactory, tmp_path: Path, daemon_processes: list[DaemonProcess]
) -> None:
    """kill -9 while the POST's answer is on its way; the first delivery finishes; on restart
    the batch is sent again, Jet skips the file: 0 second copies, 0 lost."""
    server = await emulator_factory(bandwidth_bps=BANDWIDTH_BPS)
    job_id, src, dst = await make_manual_job(server, tmp_path)
    ledger = tmp_path / "state" / "ledger.db"
    config = write_config(tmp_path / "jetwatch.toml", server.url, src, ledger, job_id)
    proc = DaemonProcess(config, tmp_path / "daemon.log")
    daemon_processes.append(proc)
    data = os.urandom(400_000)  # about 2 s of copying
    await _killed_while_the_answer_is_on_its_way(server, proc, src, data)
    [first] = await outcomes_known(server)
    assert [o["outcome"] for o in first["objects"]] == ["transferred"]
    inode = (dst / "clip.mxf").stat().st_ino
    proc.start()
    await wait_ledger_done(ledger, 1, timeout_s=30)
    assert proc.stop() == 0, proc.output()[-3000:]
    deliveries = await outcomes_known(server)
    copies = dict(copy_counts(deliveries))
    print(f"\nrestart after finish: deliveries={len(deliveries)} copies={copies}")
    assert copy_counts(deliveries) == {"/clip.mxf": 1}
    assert [o["outcome"] for o in deliveries[1]["objects"]] == ["skipped"]
    assert (dst / "clip.mxf").read_bytes() == data
    assert (dst / "clip.mxf").stat().st_ino == inode  # never written again


async def test_kill_9_before_the_answer_then_restart_at_once_while_it_copies(
    emulator_factory: EmulatorFactory, tmp_path: Path, daemon_processes: list[DaemonProcess]
) -> None:
    """kill -9 while the POST's answer is on its way, restarted at once while the first
    delivery still copies a bandwidth-limited file: the batch waits until that is over,
    then goes again and is skipped: 0 second copies, 0 lost."""
    server = await emulator_factory(bandwidth_bps=BANDWIDTH_BPS)
    job_id, src, dst = await make_manual_job(server, tmp_path)
    ledger = tmp_path / "state" / "ledger.db"
    config = write_config(tmp_path / "jetwatch.toml", server.url, src, ledger, job_id)
    proc = DaemonProcess(config, tmp_path / "daemon.log")
    daemon_processes.append(proc)
    data = os.urandom(1_200_000)  # about 6 s of copying
    await _killed_while_the_answer_is_on_its_way(server, proc, src, data)
    proc.start()
    await wait_ledger_done(ledger, 1, timeout_s=40)
    assert proc.stop() == 0, proc.output()[-3000:]
    deliveries = await outcomes_known(server)
    copies = dict(copy_counts(deliveries))
    print(f"\nrestart at once: deliveries={len(deliveries)} copies={copies}")
    waits = [e for e in _events(proc) if e["event"] == "in_doubt_waiting"]
    assert [w["in_flight"] for w in waits] == [1]  # it waited for the first one to end
    assert copy_counts(deliveries) == {"/clip.mxf": 1}
    assert [o["outcome"] for o in deliveries[-1]["objects"]] == ["skipped"]
    assert (dst / "clip.mxf").read_bytes() == data


def _events(proc: DaemonProcess) -> list[dict[str, Any]]:
    events = []
    for line in proc.output().splitlines():
        with contextlib.suppress(ValueError):
            events.append(json.loads(line))
    return events


async def _pause_mid_delivery(
    emulator_factory: EmulatorFactory, api_for: ApiFor, tmp_path: Path, model: PausedBacklog
) -> list[dict[str, Any]]:
    """A bandwidth-limited file; its job is paused while it copies, then resumed."""
    server = await emulator_factory(bandwidth_bps=BANDWIDTH_BPS, paused_backlog=model)
    job_id, src, dst = await make_manual_job(server, tmp_path)
    settings = make_settings(
        server.url, src, tmp_path / "ledger.db", job_id, jet={"stall_seconds": 2.0}
    )
    data = os.urandom(600_000)  # about 3 s of copying
    async with running_daemon(settings) as daemon:
        write_file(src / "take.mov", data)

        async def copying() -> bool:
            items = await received(server)
            return bool(items) and items[0]["state"] == "IN_PROGRESS"

        await wait_true(copying, what="first delivery copying")
        await asyncio.sleep(0.5)  # part of the file is copied by now
        await set_paused(server, job_id, True)
        if model is PausedBacklog.FAIL:
            await wait_true(lambda: held_files_are(daemon, 1), timeout_s=20, what="held")
        else:  # it never moves: longer than stall_seconds, paused, it is not given up
            await asyncio.sleep(2.5)
            assert await state_is(daemon, FileState.SUBMITTED, 1)
        assert len(await received(server)) == 1  # nothing sent to a paused job
        await set_paused(server, job_id, False)
        await wait_arrived(src, dst, ["take.mov"], timeout_s=30)
        await wait_true(lambda: all_done(daemon, 1), what="done")
    assert (dst / "take.mov").read_bytes() == data

    async def last_known() -> bool:
        *_, last = await received(server)
        return all("outcome" in o for o in last["objects"])

    await wait_true(last_known, what="outcome of the last delivery")
    return await received(server)


async def test_pause_mid_delivery_that_then_fails_resumes_whole(
    emulator_factory: EmulatorFactory, api_for: ApiFor, tmp_path: Path
) -> None:
    """clearBacklogOnPause, the delivery ends FAILED: held without counting an attempt, sent
    again when the job runs: the file arrives whole, copied once."""
    deliveries = await _pause_mid_delivery(emulator_factory, api_for, tmp_path, PausedBacklog.FAIL)
    assert [d["state"] for d in deliveries] == ["FAILED", "COMPLETED"]
    assert copy_counts(deliveries) == {"/take.mov": 1}


async def test_pause_mid_delivery_that_then_never_moves_resumes_whole(
    emulator_factory: EmulatorFactory, api_for: ApiFor, tmp_path: Path
) -> None:
    """clearBacklogOnPause, the delivery never moves again: after the job runs again it is
    found stalled (stall_seconds, nothing in progress) and delivered again: whole, once."""
    with structlog.testing.capture_logs() as logs:
        deliveries = await _pause_mid_delivery(
            emulator_factory, api_for, tmp_path, PausedBacklog.STALL
        )
    assert [d["state"] for d in deliveries] == ["IN_PROGRESS", "COMPLETED"]
    assert copy_counts(deliveries) == {"/take.mov": 1}
    assert any(e["event"] == "delivery_redelivered" and "stalled" in e["reason"] for e in logs)


async def test_growing_file_to_a_growing_job_goes_in_one_delivery_whole(
    emulator_factory: EmulatorFactory, api_for: ApiFor, tmp_path: Path
) -> None:
    """growing = true and a job with areGrowingObjects: handed over at first sight, Jet
    follows it until idle: one delivery, the whole file, no second version sent."""
    server = await emulator_factory()
    job_id, src, dst = await make_manual_job(server, tmp_path)
    api = await api_for(server)
    growing = {"areGrowingObjects": True, "growingObjects": {"growingIdleTimeoutInSeconds": 1}}
    await api.ok("PATCH", f"/v1/jobs/{job_id}", {"transferOptions": growing})
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id, growing=True)
    async with running_daemon(settings) as daemon:
        await wait_true(lambda: daemon.registry.status(settings.folders[0].label).usable)
        await grow_file(src / "rec.mxf", 1.5)
        await wait_arrived(src, dst, ["rec.mxf"], timeout_s=30)
        await wait_true(lambda: all_done(daemon, 1), what="done")
        await asyncio.sleep(1.0)  # two scans: the final version is not offered again
        assert await state_is(daemon, FileState.DONE, 1)
        assert await all_done(daemon, 1)
    deliveries = await outcomes_known(server)
    assert len(deliveries) == 1
    assert copy_counts(deliveries) == {"/rec.mxf": 1}
    assert (dst / "rec.mxf").read_bytes() == (src / "rec.mxf").read_bytes()


async def test_growing_folder_is_held_until_its_job_follows_growing_objects(
    emulator_job: tuple[EmulatorServer, str, Path, Path], api_for: ApiFor, tmp_path: Path
) -> None:
    """growing = true with a job that copies what exists when it runs: held with the
    reason, then sent once the job follows growing objects."""
    server, job_id, src, dst = emulator_job
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id, growing=True)
    async with running_daemon(settings) as daemon:
        write_file(src / "clip.mxf", b"x" * 1000)
        await wait_true(lambda: held_files_are(daemon, 1), what="held")
        [held] = (await daemon.status_json())["held"]
        assert held["reason"].startswith(HoldReason.NOT_GROWING.value)
        assert await received(server) == []
        growing = {"areGrowingObjects": True, "growingObjects": {"growingIdleTimeoutInSeconds": 0}}
        api = await api_for(server)
        await api.ok("PATCH", f"/v1/jobs/{job_id}", {"transferOptions": growing})
        await wait_arrived(src, dst, ["clip.mxf"])
        await wait_true(lambda: all_done(daemon, 1), what="done")


async def test_folder_outside_its_profile_is_held_and_nothing_is_touched(
    emulator_job: tuple[EmulatorServer, str, Path, Path], tmp_path: Path
) -> None:
    """A folder not under its job's source profile, post_action = "delete": held with a loud
    reason (log, /readyz, status); nothing sent, the profile's namesake not copied, our
    file not deleted."""
    server, job_id, src, dst = emulator_job
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    write_file(src / "clip.mov", b"the profile's own file")  # what Jet would have copied
    settings = make_settings(
        server.url, outside, tmp_path / "ledger.db", job_id, post_action="delete"
    )
    with structlog.testing.capture_logs() as logs:
        async with running_daemon(settings) as daemon:
            write_file(outside / "clip.mov", b"ours")
            await wait_true(lambda: held_files_are(daemon, 1), what="held")
            status = await daemon.status_json()
            await asyncio.sleep(1.0)  # rechecks and post-action rounds pass: still nothing
            assert await held_files_are(daemon, 1)
    [held] = status["held"]
    assert held["reason"].startswith(HoldReason.OUTSIDE_PROFILE.value)
    assert any("not under the job's source profile" in r for r in status["reasons"])
    assert any(e["event"] == "job_unusable" and e["log_level"] == "error" for e in logs)
    assert await received(server) == []
    assert (outside / "clip.mov").read_bytes() == b"ours"
    assert not (dst / "clip.mov").exists()
