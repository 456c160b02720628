"""The event watcher is audited against the real inotify descriptor: a watch that is
incomplete, deaf or dead puts the folder in SCAN at once, loudly, and events come back."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
from pathlib import Path

import pytest
import structlog

from jetwatch.intake import watchaudit
from jetwatch.intake.mounts import WatchMode
from jetwatch.intake.watchaudit import audit, inotify_fds, watch_limit, watched_dirs
from jetwatch.intake.watcher import FolderWatch
from jetwatch.metrics import REGISTRY
from tests.unit.test_watcher import (
    TIMEOUT_S,
    Recorder,
    in_events,
    make_watch,
    rec,
    root,
    running,
)

__all__ = ["rec", "root"]  # fixtures

LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def watcher_fd(watch: FolderWatch) -> int:
    feed = watch._feed
    assert feed is not None
    assert feed.fd is not None
    return feed.fd


def remove_watches(fd: int, dirs: list[Path]) -> None:
    """inotify_rm_watch on the watches of ``dirs`` (all of them when empty): a watcher that
    believes it watches what the kernel no longer reports."""
    wanted = {(os.stat(d).st_dev, os.stat(d).st_ino) for d in dirs}
    text = Path(f"/proc/self/fdinfo/{fd}").read_text()
    removed = 0
    for line in text.splitlines():
        if not line.startswith("inotify "):
            continue
        fields = dict(part.partition(":")[::2] for part in line.split()[1:])
        sdev, ino = int(fields["sdev"], 16), int(fields["ino"], 16)
        dev = os.makedev(sdev >> 20, sdev & 0xFFFFF)
        if not wanted or (dev, ino) in wanted:
            assert LIBC.inotify_rm_watch(fd, int(fields["wd"], 16)) == 0, ctypes.get_errno()
            removed += 1
    assert removed > 0
    assert removed == (len(wanted) or removed)


def failures(folder: str = "test") -> float:
    value = REGISTRY.get_sample_value("jetwatch_watch_failures_total", {"folder": folder})
    return value or 0.0


def test_watched_dirs_reads_the_real_descriptor(tmp_path: Path) -> None:
    """fdinfo's watches come back as (dev, inode) in os.stat's encoding."""
    libc_fd = LIBC.inotify_init1(os.O_CLOEXEC)
    assert libc_fd >= 0
    try:
        (tmp_path / "a").mkdir()
        for d in (tmp_path, tmp_path / "a"):
            assert LIBC.inotify_add_watch(libc_fd, os.fsencode(d), 0x100) >= 0
        assert libc_fd in (inotify_fds() or set())
        ids = {(os.stat(d).st_dev, os.stat(d).st_ino) for d in (tmp_path, tmp_path / "a")}
        assert watched_dirs(libc_fd) == ids
        (tmp_path / "b").mkdir()
        b_ino = os.stat(tmp_path / "b").st_ino
        found = audit(watched_dirs(libc_fd), str(tmp_path), [("a", 0), ("b", b_ino)])
        assert found.missing == ("b",)
        assert found.watches == 2
    finally:
        os.close(libc_fd)
    assert watched_dirs(libc_fd) is None
    assert (watch_limit() or 0) > 0


async def test_unwatched_directory_found_by_full_scan(rec: Recorder, root: Path) -> None:
    """A directory that lost its watch is found by the next full scan's audit: SCAN at once,
    the reason names it and the limit, the failure is counted; events come back later."""
    (root / "a" / "b").mkdir(parents=True)
    watch = make_watch(rec, root, events_retry_s=0.3)
    before = failures()
    async with running(watch):
        await rec.wait(lambda: in_events(rec), "EVENTS")
        remove_watches(watcher_fd(watch), [root / "a" / "b"])
        with structlog.testing.capture_logs() as logs:
            watch.request_rescan()
            await rec.wait(lambda: rec.states[-1].mode is WatchMode.SCAN, "SCAN")
        reason = rec.states[-1].reason
        assert "1 directories have no inotify watch (first: 'a/b')" in reason
        assert "max_user_watches" in reason
        assert failures() == before + 1
        (event,) = [e for e in logs if e["event"] == "watch_fallback_to_scan"]
        assert event["log_level"] == "error"
        # A new watcher is complete again: events come back by themselves.
        await rec.wait(lambda: in_events(rec), "EVENTS again")
        (root / "a" / "b" / "new.mov").write_bytes(b"x")
        await rec.wait(lambda: "a/b/new.mov" in rec.hinted, "a hint from the new watcher")


async def test_new_directory_without_watch_is_caught_at_once(
    rec: Recorder, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new directory whose watch the kernel refused (notify drops that error) is found
    by the audit of its own subdirectory scan, not ten minutes later."""
    watch = make_watch(rec, root, reconcile_s=3600)
    async with running(watch):
        await rec.wait(lambda: in_events(rec), "EVENTS")
        fd = watcher_fd(watch)
        real = watched_dirs
        late = root / "late"

        def without_late(descriptor: int) -> set[tuple[int, int]] | None:
            # What the kernel reports once it refused late/'s watch: all but that one.
            found = real(descriptor)
            if found is None or not late.exists():
                return found
            return found - {(late.stat().st_dev, late.stat().st_ino)}

        monkeypatch.setattr("jetwatch.intake.watchaudit.watched_dirs", without_late)
        (late / "deep").mkdir(parents=True)
        (late / "deep" / "f.mov").write_bytes(b"x")
        await rec.wait(lambda: bool(rec.states) and rec.states[-1].mode is WatchMode.SCAN, "SCAN")
        assert "(first: 'late')" in rec.states[-1].reason
        # The incomplete watcher is gone (notify closes its descriptor a moment later).
        async with asyncio.timeout(TIMEOUT_S):
            while fd in (inotify_fds() or set()):
                await asyncio.sleep(0.01)


async def test_deaf_watcher_is_noticed_and_replaced(rec: Recorder, root: Path) -> None:
    """mode events with no watch in the kernel: the periodic probe notices, SCAN says so,
    a new watcher takes over and hints flow again."""
    watch = make_watch(rec, root, events_retry_s=0.2)
    async with running(watch):
        await rec.wait(lambda: in_events(rec), "EVENTS")
        remove_watches(watcher_fd(watch), [])
        await rec.wait(lambda: rec.states[-1].mode is WatchMode.SCAN, "SCAN")
        assert "went deaf" in rec.states[-1].reason
        (root / "meanwhile.mov").write_bytes(b"x")
        await rec.wait(lambda: "meanwhile.mov" in rec.scanned, "found by a scan")
        await rec.wait(lambda: in_events(rec), "EVENTS again")
        (root / "after.mov").write_bytes(b"x")
        await rec.wait(lambda: "after.mov" in rec.hinted, "hint from the new watcher")


async def test_undecodable_name_keeps_events(rec: Recorder, root: Path) -> None:
    """A name watchfiles cannot decode kills its watcher: the name is reported, the reason
    is words (no Rust repr), and events mode comes back while the file is still there."""
    watch = make_watch(rec, root, events_retry_s=0.2)
    async with running(watch):
        await rec.wait(lambda: in_events(rec), "EVENTS")
        fd = os.open(os.fsencode(root) + b"/x\xfe.mov", os.O_CREAT | os.O_WRONLY, 0o644)
        os.close(fd)
        await rec.wait(lambda: rec.states[-1].mode is WatchMode.SCAN, "SCAN")
        reason = rec.states[-1].reason
        assert "not UTF-8" in reason
        assert "RustInternalError" not in reason
        assert "Unable to decode" not in reason
        await rec.wait(lambda: ("x\udcfe.mov", "not valid UTF-8") in rec.bad, "name reported")
        await rec.wait(lambda: in_events(rec), "EVENTS again, bad name still there")
        (root / "good.mov").write_bytes(b"x")
        await rec.wait(lambda: "good.mov" in rec.hinted, "hint from the new watcher")


def test_watches_held_counts_every_descriptor_once_per_look(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """watches_held counts what watched_dirs reads; folders asking together (200 at start)
    share one look at /proc instead of one each over every descriptor."""
    libc_fd = LIBC.inotify_init1(os.O_CLOEXEC)
    assert libc_fd >= 0
    try:
        for name in ("a", "b", "c"):
            (tmp_path / name).mkdir()
            assert LIBC.inotify_add_watch(libc_fd, os.fsencode(tmp_path / name), 0x100) >= 0
        monkeypatch.setattr(watchaudit, "_held_memo", None)
        mine = watchaudit.watches_held() - watchaudit.watches_held(exclude=[libc_fd])
        assert mine == len(watched_dirs(libc_fd) or ()) == 3
        looks = []
        real = watchaudit.inotify_fds

        def counted() -> set[int] | None:
            looks.append(1)
            return real()

        monkeypatch.setattr(watchaudit, "inotify_fds", counted)
        monkeypatch.setattr(watchaudit, "HELD_MEMO_S", 3600.0)
        for _ in range(200):
            watchaudit.watch_budget()
        assert len(looks) <= 1
    finally:
        os.close(libc_fd)
