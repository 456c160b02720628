"""Folders that start watching together share one watchfiles thread and inotify descriptor;
each still gets its own hints only, a failed shared build is retried folder by folder, and
the thread ends with its last folder. Real folders, real watchfiles, real inotify."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from watchfiles import Change

from jetwatch.intake import inotify
from jetwatch.intake.inotify import INSTALLED, by_root
from jetwatch.intake.watchaudit import inotify_fds
from jetwatch.intake.watchhub import Subscription, WatchHub
from tests.unit.test_watcher import TIMEOUT_S, Recorder, in_events, make_watch

__all__ = ["Recorder"]


def watch_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """Watcher threads started since ``before`` (other tests' may still be ending)."""
    return [t for t in threading.enumerate() if t.name.startswith("watch:") and t not in before]


async def next_item(sub: Subscription) -> object:
    return await asyncio.wait_for(sub.get(), TIMEOUT_S)


async def wait_for(condition: object, what: str) -> None:
    assert callable(condition)
    async with asyncio.timeout(TIMEOUT_S):
        while not condition():
            await asyncio.sleep(0.02)


async def test_folders_started_together_share_one_watcher(tmp_path: Path) -> None:
    """Three folders: one thread, one inotify descriptor; hints go to their own folder; one
    folder stopping leaves the others watched; the thread ends with the last one."""
    roots = [tmp_path / name for name in ("a", "b", "c")]
    for root in roots:
        root.mkdir()
    recs = [Recorder() for _ in roots]
    before, threads = inotify_fds() or set(), set(threading.enumerate())
    watches = [make_watch(rec, root, name=root.name) for rec, root in zip(recs, roots, strict=True)]
    tasks = [asyncio.create_task(w.run()) for w in watches]
    try:
        for rec in recs:
            await rec.wait(lambda rec=rec: in_events(rec), "EVENTS")
        assert len(watch_threads(threads)) == 1
        assert watch_threads(threads)[0].name.endswith("+2")  # one folder and two more
        assert len((inotify_fds() or set()) - before) == 1
        fds = {w._feed.fd for w in watches if w._feed is not None}
        assert len(fds) == 1
        assert None not in fds

        for root in roots:
            (root / f"{root.name}.mov").write_bytes(b"x")
        for rec, root in zip(recs, roots, strict=True):
            await rec.wait(lambda rec=rec, root=root: f"{root.name}.mov" in rec.hinted, "hint")
        for rec, root in zip(recs, roots, strict=True):
            assert rec.hinted == {f"{root.name}.mov"}  # nothing of the other folders

        tasks[0].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tasks[0]
        (roots[1] / "later.mov").write_bytes(b"x")
        await recs[1].wait(lambda: "later.mov" in recs[1].hinted, "hint after a folder left")
        assert len(watch_threads(threads)) == 1
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    # The thread tells the loop it ended a moment before it returns: wait for it to go.
    await wait_for(lambda: watch_threads(threads) == [], "the watcher thread ended")
    # notify closes the descriptor in its own event thread, a moment after ours ended.
    await wait_for(lambda: (inotify_fds() or set()) - before == set(), "the descriptor closed")


async def test_failed_shared_build_is_tried_folder_by_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shared build that fails (here: the watch limit is reached by both trees together,
    not by either alone) is tried again folder by folder: each gets its own watcher."""
    real_watch = inotify.watch

    def limited(*paths: str, **kwargs: Any) -> Iterator[set[tuple[Change, str]]]:
        if len(paths) > 1:
            raise OSError("OS file watch limit reached")
        return real_watch(*paths, **kwargs)

    monkeypatch.setattr("jetwatch.intake.inotify.watch", limited)
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    hub = WatchHub(gather_s=0.2)
    subs = [hub.subscription(str(root), root.name) for root in (first, second)]
    for sub in subs:
        sub.start()
    try:
        with structlog.testing.capture_logs() as logs:
            for sub in subs:
                assert await next_item(sub) == INSTALLED
        assert [e["folders"] for e in logs if e["event"] == "watch_group_split"] == [2]
        assert hub.threads == 2
        assert subs[0].fd != subs[1].fd
        (second / "f.mov").write_bytes(b"x")
        changes = await next_item(subs[1])
        assert isinstance(changes, set)
        assert (Change.added, os.path.join(second, "f.mov")) in changes
        assert await subs[1].watched(0.0) == {(second.stat().st_dev, second.stat().st_ino)}
    finally:
        for sub in subs:
            await sub.stop()
    await wait_for(lambda: hub.threads == 0, "no watcher left")


async def test_watchers_built_apart_are_merged_into_one(tmp_path: Path) -> None:
    """Folders that asked at different times get one watcher each at first; once quiet the
    hub builds one over both, hands both folders to it and stops the old two."""
    roots = [tmp_path / "early", tmp_path / "late"]
    for root in roots:
        (root / "sub").mkdir(parents=True)
    before = inotify_fds() or set()
    hub = WatchHub(gather_s=0.05, gather_max_s=0.1, merge_quiet_s=0.3)
    subs = [hub.subscription(str(root), root.name) for root in roots]
    try:
        with structlog.testing.capture_logs() as logs:
            subs[0].start()
            assert await next_item(subs[0]) == INSTALLED
            first_fd = subs[0].fd
            subs[1].start()
            assert await next_item(subs[1]) == INSTALLED
            assert subs[1].fd != first_fd  # asked later: a watcher of its own
            await wait_for(lambda: subs[0].fd == subs[1].fd != first_fd, "one watcher")
            await wait_for(lambda: hub.threads == 1, "the old watchers stopped")
        (merged,) = [e for e in logs if e["event"] == "watch_merged"]
        assert (merged["folders"], merged["watchers"], merged["watches"]) == (2, 2, 4)
        await wait_for(lambda: len((inotify_fds() or set()) - before) == 1, "old fds closed")
        for root, sub in zip(roots, subs, strict=True):
            (root / "sub" / "f.mov").write_bytes(b"x")
            path = os.path.join(root, "sub", "f.mov")
            while (Change.added, path) not in (changes := await next_item(sub)):
                assert isinstance(changes, set)
                assert all(p.startswith(str(root)) for _, p in changes)
    finally:
        for sub in subs:
            await sub.stop()
    await wait_for(lambda: hub.threads == 0, "no watcher left")
    # The replaced watchers stop in the background: their descriptors close within a step.
    await wait_for(lambda: (inotify_fds() or set()) - before == set(), "every descriptor closed")


def test_changes_are_cut_by_root() -> None:
    """Paths go to the root they are under (both of two nested roots), a deleted root to
    itself, and nothing of another root; "/" is a root like any other."""
    changes = {
        (Change.added, "/in/a/f.mov"),
        (Change.added, "/in/a/sub/g.mov"),
        (Change.deleted, "/in/b"),
        (Change.added, "/in/bb/h.mov"),
    }
    cut = by_root(changes, ["/in/a", "/in/a/sub", "/in/b", "/elsewhere"])
    assert cut == {
        "/in/a": {(Change.added, "/in/a/f.mov"), (Change.added, "/in/a/sub/g.mov")},
        "/in/a/sub": {(Change.added, "/in/a/sub/g.mov")},
        "/in/b": {(Change.deleted, "/in/b")},
    }
    assert by_root({(Change.added, "/x")}, ["/", "/y"]) == {"/": {(Change.added, "/x")}}
