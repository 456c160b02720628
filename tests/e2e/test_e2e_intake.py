"""End to end, in-process daemon: what lands in the folder is delivered complete and once."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
from pathlib import Path

import structlog

from jetwatch.emulators.jet import EmulatorServer
from jetwatch.metrics import REGISTRY
from tests.fixtures.pipeline import (
    all_done,
    arrived,
    duplicates,
    grow_file,
    make_settings,
    path_counts,
    received,
    running_daemon,
    wait_arrived,
    wait_true,
    write_file,
)

Job = tuple[EmulatorServer, str, Path, Path]


async def test_growing_file_is_delivered_once_complete(emulator_job: Job, tmp_path: Path) -> None:
    """A file written for longer than settle_seconds is sent once, at its final size."""
    server, job_id, src, dst = emulator_job
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id, settle_seconds=0.4)
    async with running_daemon(settings) as daemon:
        path = src / "growing.mxf"
        await grow_file(path, 1.6)  # four times settle_seconds
        await wait_arrived(src, dst, ["growing.mxf"])
        await wait_true(lambda: all_done(daemon, 1), what="post-action done")
    deliveries = await received(server)
    assert path_counts(deliveries) == {"/growing.mxf": 1}
    assert (dst / "growing.mxf").stat().st_size == path.stat().st_size


async def test_rsync_temp_file_renamed_is_delivered_once_by_final_name(
    emulator_job: Job, tmp_path: Path
) -> None:
    """rsync's hidden ``.name.XXXXXX`` is never sent; the renamed ``name`` is sent once."""
    server, job_id, src, dst = emulator_job
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id)
    async with running_daemon(settings) as daemon:
        temp = src / "sub" / ".clip.mov.Xa81k2"
        temp.parent.mkdir()
        with temp.open("wb") as fh:
            for _ in range(6):
                fh.write(os.urandom(8 * 1024))
                fh.flush()
                await asyncio.sleep(0.1)
        # Hold the finished temp file past settle_seconds: it must still not be sent.
        await asyncio.sleep(0.5)
        os.rename(temp, src / "sub" / "clip.mov")
        await wait_arrived(src, dst, ["sub/clip.mov"])
        await wait_true(lambda: all_done(daemon, 1), what="post-action done")
    assert path_counts(await received(server)) == {"/sub/clip.mov": 1}


async def test_nested_unicode_and_moved_in_directory(emulator_job: Job, tmp_path: Path) -> None:
    """Nested dirs, unicode and spaces in names, and a directory moved in full are all sent."""
    server, job_id, src, dst = emulator_job
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id)
    files = {
        "a/b/c/deep.bin": os.urandom(2048),
        "shoot 01/take é ü 1.wav": os.urandom(4096),
        "日本語/ファイル 名.mov": os.urandom(1024),
        "emoji 🎬/clip.mxf": os.urandom(512),
    }
    staged = {
        "ready dir/one.txt": b"one",
        "ready dir/inner/two.txt": b"two",
        "ready dir/inner/deeper/three.txt": b"three",
    }
    async with running_daemon(settings) as daemon:
        for rel, data in files.items():
            write_file(src / rel, data)
        # A directory created elsewhere with files already inside, then moved in at once.
        outside = tmp_path / "staging"
        for rel, data in staged.items():
            write_file(outside / rel, data)
        os.rename(outside / "ready dir", src / "ready dir")
        wanted = [*files, *staged]
        await wait_arrived(src, dst, wanted)
        await wait_true(lambda: all_done(daemon, len(wanted)), what="all done")
    counts = path_counts(await received(server))
    assert counts == {"/" + rel: 1 for rel in wanted}


def _ignored(label: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "jetwatch_files_ignored_total", {"folder": label, "reason": reason}
    )
    return value or 0.0


async def test_bad_names_are_skipped_with_warning_and_counter(
    emulator_job: Job, tmp_path: Path
) -> None:
    """Invalid UTF-8 and newline names are skipped, counted and logged; others still flow."""
    server, job_id, src, dst = emulator_job
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id)
    label = settings.folders[0].label
    write_file(src / "before.txt", b"before")
    # One bad name exists at start-up (found by the first scan)...
    _bad_file(src, b"early\xff\xfe.bin")
    with structlog.testing.capture_logs() as logs:
        async with running_daemon(settings) as daemon:
            # ... more arrive while the daemon watches: first a newline (events still on) ...
            write_file(src / "new\nline.txt", b"nl")
            write_file(src / "after.txt", b"after")
            await wait_true(
                lambda: _ignored(label, "control character in name") >= 1, what="newline counted"
            )
            # ... then bytes that are not UTF-8, which the event library cannot even decode.
            _bad_file(src, b"late\xc3\x28.bin")
            await wait_true(lambda: _ignored(label, "not valid UTF-8") >= 2, what="UTF-8 counted")
            write_file(src / "later.txt", b"later")
            await wait_arrived(src, dst, ["before.txt", "after.txt", "later.txt"])
            await wait_true(lambda: all_done(daemon, 3), what="all done")
            # The event library died on that name; a new watcher takes over, and events
            # mode comes back although the file is still there.
            await wait_true(lambda: _failures(label) >= 1, what="the watcher failure counted")
            await wait_true(
                lambda: daemon.intakes[label].health.mode == "events", what="events again"
            )
            write_file(src / "evented.txt", b"evented")
            await wait_arrived(src, dst, ["evented.txt"])
    warned = sorted(e["path"] for e in logs if e["event"] == "file_name_skipped")
    assert warned == sorted(
        ascii(p) for p in ("early\udcff\udcfe.bin", "late\udcc3(.bin", "new\nline.txt")
    )
    counts = path_counts(await received(server))
    assert counts == {"/before.txt": 1, "/after.txt": 1, "/later.txt": 1, "/evented.txt": 1}


def _failures(label: str) -> float:
    value = REGISTRY.get_sample_value("jetwatch_watch_failures_total", {"folder": label})
    return value or 0.0


def _bad_file(folder: Path, name: bytes) -> None:
    """Create a file whose name is raw bytes (os.open on a bytes path)."""
    fd = os.open(os.fsencode(folder) + b"/" + name, os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, b"bad name")
    os.close(fd)


async def test_burst_larger_than_max_files(emulator_job: Job, tmp_path: Path) -> None:
    """1,000 files with max_files=100: every batch has at most 100 files, each sent once."""
    server, job_id, src, dst = emulator_job
    settings = make_settings(
        server.url, src, tmp_path / "ledger.db", job_id, max_files=100, settle_seconds=0.2
    )
    names = [f"burst/{i // 100:02d}/file-{i:04d}.dat" for i in range(1000)]
    async with running_daemon(settings) as daemon:
        for i, rel in enumerate(names):
            write_file(src / rel, f"content {i}\n".encode())
        await wait_true(lambda: all_done(daemon, len(names)), timeout_s=60, what="all done")
    deliveries = await received(server)
    assert max(len(d["objects"]) for d in deliveries) <= 100
    assert duplicates(deliveries) == {}
    assert set(path_counts(deliveries)) == {"/" + rel for rel in names}
    assert arrived(src, dst, names) == set(names)
    shutil.rmtree(src / "burst")


async def test_special_files_are_said_once_and_counted(emulator_job: Job, tmp_path: Path) -> None:
    """Symlinks (never followed), FIFOs, sockets and devices are skipped with one info line
    per path and counted by kind, found by the first scan and by events alike."""
    server, job_id, src, dst = emulator_job
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id)
    label = settings.folders[0].label
    outside = tmp_path / "outside"
    write_file(outside / "secret.txt", b"not ours")
    (src / "early-link.txt").symlink_to(outside / "secret.txt")
    (src / "dir-link").symlink_to(outside)
    os.mkfifo(src / "early.fifo")
    with structlog.testing.capture_logs() as logs:
        async with running_daemon(settings) as daemon:
            await wait_true(lambda: _ignored(label, "fifo") >= 1, what="fifo at start")
            os.mkfifo(src / "late.fifo")
            (src / "late-link.txt").symlink_to(outside / "secret.txt")
            with socket.socket(socket.AF_UNIX) as sock:
                sock.bind(os.fspath(src / "s.sock"))
                if os.geteuid() == 0:
                    os.mknod(src / "null.dev", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
                write_file(src / "real.txt", b"real")
                await wait_arrived(src, dst, ["real.txt"])
                await wait_true(lambda: _ignored(label, "socket") >= 1, what="socket")
                await wait_true(lambda: all_done(daemon, 1), what="real.txt done")
                scans = sum(1 for e in logs if e["event"] == "scan_finished")
                daemon.intakes[label].watch.request_rescan()  # a full scan says nothing again
                await wait_true(
                    lambda: sum(1 for e in logs if e["event"] == "scan_finished") > scans,
                    what="another full scan",
                )
    skipped = sorted((e["path"], e["kind"]) for e in logs if e["event"] == "file_type_skipped")
    expected = [
        ("'dir-link'", "symlink"),
        ("'early-link.txt'", "symlink"),
        ("'early.fifo'", "fifo"),
        ("'late-link.txt'", "symlink"),
        ("'late.fifo'", "fifo"),
        ("'s.sock'", "socket"),
    ]
    if os.geteuid() == 0:
        expected.insert(2, ("'null.dev'", "device"))
    assert skipped == sorted(expected)
    assert all(e["log_level"] == "info" for e in logs if e["event"] == "file_type_skipped")
    assert _ignored(label, "symlink") == 3
    assert path_counts(await received(server)) == {"/real.txt": 1}
