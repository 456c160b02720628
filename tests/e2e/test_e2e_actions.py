"""Post-actions end to end: move keeps paths without overwriting, delete tidies, new versions."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
import structlog

from jetwatch.domain.states import FileState
from jetwatch.emulators.jet import EmulatorServer
from tests.fixtures.emulator import EmulatorFactory, make_manual_job
from tests.fixtures.pipeline import (
    all_done,
    make_settings,
    path_counts,
    received,
    running_daemon,
    state_is,
    wait_arrived,
    wait_true,
    write_file,
)

Job = tuple[EmulatorServer, str, Path, Path]


async def test_move_keeps_relative_path_and_never_overwrites(
    emulator_job: Job, tmp_path: Path
) -> None:
    """Delivered files move to done_dir under their relative path; a name taken gets a suffix."""
    server, job_id, src, dst = emulator_job
    done = tmp_path / "done"
    write_file(done / "sub" / "clip.txt", b"an older file that must survive")
    settings = make_settings(
        server.url, src, tmp_path / "ledger.db", job_id, post_action="move", done_dir=done
    )
    contents = {"sub/clip.txt": b"new clip", "sub/deeper/x.txt": b"x", "top.txt": b"top"}
    async with running_daemon(settings) as daemon:
        for rel, data in contents.items():
            write_file(src / rel, data)
        await wait_true(lambda: all_done(daemon, 3), what="all done")
    assert (done / "sub" / "clip.txt").read_bytes() == b"an older file that must survive"
    assert (done / "sub" / "clip.1.txt").read_bytes() == b"new clip"
    assert (done / "sub" / "deeper" / "x.txt").read_bytes() == b"x"
    assert (done / "top.txt").read_bytes() == b"top"
    assert list(src.iterdir()) == []  # emptied subdirectories are gone, the root stays
    assert {rel: (dst / rel).read_bytes() for rel in contents} == contents


async def test_delete_removes_files_and_empty_dirs_but_not_root(
    emulator_job: Job, tmp_path: Path
) -> None:
    """Delete removes delivered files and emptied subdirectories, never the watched folder."""
    server, job_id, src, dst = emulator_job
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id, post_action="delete")
    names = ["a/b/c/deep.txt", "a/side.txt", "root.txt"]
    async with running_daemon(settings) as daemon:
        write_file(src / "keepdir" / ".hidden", b"not a candidate: keeps its directory")
        for rel in names:
            write_file(src / rel, rel.encode())
        await wait_true(lambda: all_done(daemon, 3), what="all done")
        assert src.is_dir()
    assert sorted(p.name for p in src.iterdir()) == ["keepdir"]
    assert (src / "keepdir" / ".hidden").exists()
    assert all((dst / rel).read_bytes() == rel.encode() for rel in names)


async def test_file_changed_during_delivery_is_kept_and_sent_again_after(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A file changed while in flight is not deleted; the new version goes after, not beside."""
    server = await emulator_factory(bandwidth_bps=400_000)
    job_id, src, dst = await make_manual_job(server, tmp_path)
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id, post_action="delete")
    path = src / "big.mov"
    with structlog.testing.capture_logs() as logs:
        async with running_daemon(settings) as daemon:
            write_file(path, os.urandom(400_000))  # ~1 s at the emulator's bandwidth
            await wait_true(lambda: state_is(daemon, FileState.SUBMITTED, 1), what="in flight")
            with path.open("ab") as fh:
                fh.write(os.urandom(40_000))
            final = path.read_bytes()
            await wait_true(lambda: all_done(daemon, 2), timeout_s=30, what="both versions done")
    assert not path.exists()  # the second version was delivered, then deleted
    assert (dst / "big.mov").read_bytes() == final
    results = [e["result"] for e in logs if e["event"] == "post_action"]
    # The file left in place is logged on its own; the routine delete only in the summary
    # (and per file at debug, when enabled).
    assert results[0] == "changed since delivery: left for the next delivery"
    assert set(results[1:]) <= {"deleted"}
    summaries = [e for e in logs if e["event"] == "post_actions_applied"]
    assert [(e.get("changed", 0), e.get("deleted", 0)) for e in summaries] == [(1, 0), (0, 1)]
    assert path_counts(await received(server)) == {"/big.mov": 2}
    with sqlite3.connect(settings.ledger.path) as conn:
        rows = conn.execute(
            "SELECT b.submitted_at, b.updated_at FROM files AS f JOIN batches AS b "
            "ON b.id = f.batch_id WHERE f.relpath = 'big.mov' ORDER BY f.id"
        ).fetchall()
    (_, first_done_at), (second_submitted_at, _) = rows
    assert second_submitted_at >= first_done_at  # never two versions in flight


async def test_wait_arrived_helper_compares_bytes(emulator_job: Job, tmp_path: Path) -> None:
    """A destination copy with other bytes does not count as arrived."""
    _, _, src, dst = emulator_job
    write_file(src / "f.txt", b"source")
    write_file(dst / "f.txt", b"other!")
    with pytest.raises(AssertionError, match=r"f\.txt"):
        await wait_arrived(src, dst, ["f.txt"], timeout_s=0.3)
