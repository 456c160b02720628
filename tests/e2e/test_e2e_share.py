"""The watched folder vanishes and comes back (a share that dropped): nothing lost or resent."""

from __future__ import annotations

import os
from pathlib import Path

from jetwatch.app.daemon import Daemon
from jetwatch.domain.states import FileState
from jetwatch.emulators.jet import EmulatorServer
from tests.fixtures.pipeline import (
    all_done,
    make_settings,
    path_counts,
    received,
    running_daemon,
    state_is,
    states,
    wait_arrived,
    wait_true,
    write_file,
)

Job = tuple[EmulatorServer, str, Path, Path]


def mode(daemon: Daemon) -> str:
    [intake] = daemon.intakes.values()
    return intake.health.mode


async def test_folder_renamed_away_and_back(emulator_job: Job, tmp_path: Path) -> None:
    """The folder is reported DOWN while away; afterwards only new files are sent."""
    server, job_id, src, dst = emulator_job
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id)
    away = tmp_path / "away"
    async with running_daemon(settings) as daemon:
        first = ["a.txt", "sub/b.txt"]
        for rel in first:
            write_file(src / rel, rel.encode())
        await wait_arrived(src, dst, first)
        await wait_true(lambda: all_done(daemon, 2), what="first files done")
        os.rename(src, away)
        await wait_true(lambda: mode(daemon) == "down", what="folder reported down")
        reasons = daemon.readiness().reasons
        assert any("is down" in r for r in reasons), reasons
        write_file(away / "while-away.txt", b"written while the share was away")
        os.rename(away, src)
        await wait_true(lambda: mode(daemon) != "down", timeout_s=20, what="folder back")
        write_file(src / "c.txt", b"new")
        later = ["while-away.txt", "c.txt"]
        await wait_arrived(src, dst, later)
        await wait_true(lambda: all_done(daemon, 4), what="all done")
    assert path_counts(await received(server)) == {"/" + rel: 1 for rel in [*first, *later]}


async def test_folder_vanishing_before_submit_loses_nothing(
    emulator_job: Job, tmp_path: Path
) -> None:
    """Settled files whose folder drops before their batch is posted are held, then sent."""
    server, job_id, src, dst = emulator_job
    settings = make_settings(
        server.url,
        src,
        tmp_path / "ledger.db",
        job_id,
        batch_linger_seconds=1.0,
        max_wait_seconds=2.0,
    )
    away = tmp_path / "away"
    names = [f"clip-{i}.mxf" for i in range(3)]
    async with running_daemon(settings) as daemon:
        for rel in names:
            write_file(src / rel, rel.encode() * 100)
        await wait_true(lambda: state_is(daemon, FileState.STABLE, 3), what="settled")
        os.rename(src, away)
        # The batch closes while the folder is away: it must wait, not count files as gone.
        await wait_true(lambda: daemon.ledger.held_batches(), what="batch held")
        held = (await daemon.status_json())["held"]
        assert "folder unavailable" in held[0]["reason"], held
        assert (await states(daemon)).get(FileState.GONE, 0) == 0
        os.rename(away, src)
        await wait_arrived(src, dst, names)
        await wait_true(lambda: all_done(daemon, 3), what="all done")
    assert path_counts(await received(server)) == {"/" + rel: 1 for rel in names}


async def test_folder_replaced_by_empty_mount_point_before_submit(
    emulator_job: Job, tmp_path: Path
) -> None:
    """A share unmounted under settled files (an empty mount point remains), then remounted."""
    server, job_id, src, dst = emulator_job
    settings = make_settings(
        server.url,
        src,
        tmp_path / "ledger.db",
        job_id,
        batch_linger_seconds=1.0,
        max_wait_seconds=2.0,
    )
    away = tmp_path / "away"
    names = [f"clip-{i}.mxf" for i in range(3)]
    async with running_daemon(settings) as daemon:
        for rel in names:
            write_file(src / rel, rel.encode() * 100)
        await wait_true(lambda: state_is(daemon, FileState.STABLE, 3), what="settled")
        os.rename(src, away)
        src.mkdir()  # what an unmounted share leaves behind
        await wait_true(lambda: state_is(daemon, FileState.STABLE, 0), what="batched")
        src.rmdir()
        os.rename(away, src)
        await wait_arrived(src, dst, names, timeout_s=4)
        await wait_true(lambda: all_done(daemon, 3), what="all done")
    assert path_counts(await received(server)) == {"/" + rel: 1 for rel in names}
