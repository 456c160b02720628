"""The console's two actions in a running daemon: retry failed files, re-check a held folder."""

from __future__ import annotations

from pathlib import Path

from jetwatch.domain.states import FileState
from jetwatch.emulators.jet import EmulatorServer
from tests.fixtures.emulator import set_paused
from tests.fixtures.pipeline import (
    held_files_are,
    make_settings,
    running_daemon,
    set_faults,
    state_is,
    wait_true,
    write_file,
)

Job = tuple[EmulatorServer, str, Path, Path]


async def test_retry_failed_queues_the_folders_failed_files_again(
    emulator_job: Job, tmp_path: Path
) -> None:
    server, job_id, src, dst = emulator_job
    await set_faults(server, fail_paths=["*.bad"])
    settings = make_settings(server.url, src, tmp_path / "l.db", job_id, max_attempts=1)
    label = settings.folders[0].label
    async with running_daemon(settings) as daemon:
        write_file(src / "x.bad", b"bad for now")
        await wait_true(lambda: state_is(daemon, FileState.FAILED, 1), what="failed")
        await set_faults(server)
        assert await daemon.ops_view.retry_failed("no-such-folder") is None
        assert await daemon.ops_view.retry_failed(label) == 1
        await wait_true(lambda: state_is(daemon, FileState.DONE, 1), what="delivered after retry")
    assert (dst / "x.bad").read_bytes() == b"bad for now"


async def test_recheck_releases_a_held_folder_before_the_next_scheduled_check(
    emulator_job: Job, tmp_path: Path
) -> None:
    """With checks an hour apart, only the action can notice the job was resumed."""
    server, job_id, src, dst = emulator_job
    settings = make_settings(
        server.url, src, tmp_path / "l.db", job_id, jet={"job_recheck_seconds": 3600}
    )
    label = settings.folders[0].label
    async with running_daemon(settings) as daemon:
        await set_paused(server, job_id, True)
        write_file(src / "a.txt", b"held")
        await wait_true(lambda: held_files_are(daemon, 1), what="held")
        await set_paused(server, job_id, False)
        assert await daemon.ops_view.recheck("no-such-folder") is False
        assert await daemon.ops_view.recheck(label) is True
        await wait_true(lambda: state_is(daemon, FileState.DONE, 1), what="released and delivered")
    assert (dst / "a.txt").read_bytes() == b"held"
