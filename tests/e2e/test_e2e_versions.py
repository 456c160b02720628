"""New versions Jet cannot tell from the last one, and writers that pause past settle_seconds:
both are delivered as jetwatch promises, and both are said loudly (log, metric, status)."""

from __future__ import annotations

import os
from pathlib import Path

import structlog

from jetwatch.app.daemon_client import render_daemon
from jetwatch.emulators.jet import EmulatorServer
from jetwatch.metrics import REGISTRY
from tests.fixtures.pipeline import (
    all_done,
    make_settings,
    path_counts,
    received,
    running_daemon,
    wait_arrived,
    wait_true,
    write_file,
)

Job = tuple[EmulatorServer, str, Path, Path]


def notices(label: str, kind: str) -> float:
    sample = {"folder": label, "kind": kind}
    return REGISTRY.get_sample_value("jetwatch_version_notices_total", sample) or 0.0


async def test_same_size_and_mtime_is_said_loudly(emulator_job: Job, tmp_path: Path) -> None:
    """Other bytes under the size and mtime of the version sent (rsync -t, cp -p to a new
    file): Jet skips it, the destination keeps the old bytes, and jetwatch says so."""
    server, job_id, src, dst = emulator_job
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id)
    label = settings.folders[0].label
    write_file(src / "take.mov", b"first take")
    with structlog.testing.capture_logs() as logs:
        async with running_daemon(settings) as daemon:
            await wait_arrived(src, dst, ["take.mov"])
            await wait_true(lambda: all_done(daemon, 1), what="first version done")
            old = os.stat(src / "take.mov")
            write_file(tmp_path / "other", b"other take")  # same size, other bytes
            os.utime(tmp_path / "other", ns=(old.st_atime_ns, old.st_mtime_ns))
            os.replace(tmp_path / "other", src / "take.mov")  # a new inode: a new version
            before = notices(label, "same_size_mtime")
            await wait_true(lambda: notices(label, "same_size_mtime") > before, what="counted")
            await wait_true(lambda: all_done(daemon, 2), what="second version done")
            status = await daemon.status_json()
            text = render_daemon({"url": "x", "reachable": True, **status})
    # The premise: Jet (the emulator) skipped it; the destination has the first take.
    assert (dst / "take.mov").read_bytes() == b"first take"
    assert path_counts(await received(server))["/take.mov"] == 2
    (warned,) = [e for e in logs if e["event"] == "file_same_size_mtime"]
    assert warned["log_level"] == "warning"
    assert warned["path"] == "take.mov"
    assert "destination keeps the old content" in warned["problem"]
    assert "touch the file" in warned["problem"]
    assert "WARNINGS (1)" in text
    assert "take.mov: a new version with the same size and mtime" in text


async def test_writer_pausing_past_settle_is_named(emulator_job: Job, tmp_path: Path) -> None:
    """A file sent, then written again soon after (same inode, bigger): both versions go,
    and the warning names settle_seconds and the way out."""
    server, job_id, src, dst = emulator_job
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id)
    label = settings.folders[0].label
    write_file(src / "rec.mxf", b"first half ")
    with structlog.testing.capture_logs() as logs:
        async with running_daemon(settings) as daemon:
            await wait_arrived(src, dst, ["rec.mxf"])
            await wait_true(lambda: all_done(daemon, 1), what="partial version done")
            with (src / "rec.mxf").open("ab") as out:  # the writer goes on: same inode
                out.write(b"and the second half")
            await wait_true(lambda: notices(label, "written_again") >= 1, what="counted")
            await wait_arrived(src, dst, ["rec.mxf"])
    (warned,) = [e for e in logs if e["event"] == "file_written_again"]
    assert "settle_seconds may be too short" in warned["problem"]
    assert "ready_marker" in warned["problem"]
    assert not [e for e in logs if e["event"] == "file_same_size_mtime"]
