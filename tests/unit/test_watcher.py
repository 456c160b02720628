"""Tests of FolderWatch on real folders with real watchfiles: hints, scans, outages."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from jetwatch.domain.settle import FileStat
from jetwatch.intake.events import BadName, Hints, ScanChunk, ScanDone, StateChanged, WatchEvent
from jetwatch.intake.filters import PathFilter
from jetwatch.intake.mounts import WatchMode, WatchState
from jetwatch.intake.scan import ScanReport
from jetwatch.intake.watcher import FolderWatch
from jetwatch.metrics import REGISTRY

TIMEOUT_S = 15.0


class Recorder:
    """Collects what a FolderWatch reports and lets a test wait for a condition."""

    def __init__(self) -> None:
        self.hints: list[set[str]] = []
        self.chunks: list[list[FileStat]] = []
        self.reports: list[ScanReport] = []
        self.states: list[WatchState] = []
        self.bad: list[tuple[str, str]] = []
        self._changed = asyncio.Event()

    def _note(self) -> None:
        self._changed.set()

    def on_hints(self, paths: set[str]) -> None:
        self.hints.append(paths)
        self._note()

    def on_scan_chunk(self, files: list[FileStat]) -> None:
        self.chunks.append(files)
        self._note()

    def on_scan_done(self, report: ScanReport) -> None:
        self.reports.append(report)
        self._note()

    def on_state(self, state: WatchState) -> None:
        self.states.append(state)
        self._note()

    def on_bad_name(self, relpath: str, problem: str) -> None:
        self.bad.append((relpath, problem))
        self._note()

    def on_event(self, event: WatchEvent) -> None:
        match event:
            case Hints(paths):
                self.on_hints(paths)
            case ScanChunk(files):
                self.on_scan_chunk(files)
            case ScanDone(report):
                self.on_scan_done(report)
            case StateChanged(state):
                self.on_state(state)
            case BadName(relpath, problem):
                self.on_bad_name(relpath, problem)

    @property
    def hinted(self) -> set[str]:
        return set().union(*self.hints)

    @property
    def scanned(self) -> set[str]:
        return {f.relpath for chunk in self.chunks for f in chunk}

    def full_scans(self) -> int:
        return sum(1 for r in self.reports if r.full)

    async def wait(self, condition: Callable[[], bool], what: str) -> None:
        async def poll() -> None:
            while not condition():
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(poll(), TIMEOUT_S)
        except TimeoutError:
            pytest.fail(f"timed out waiting for {what}")


def in_events(rec: Recorder) -> bool:
    return bool(rec.states) and rec.states[-1].mode is WatchMode.EVENTS


def make_watch(rec: Recorder, root: Path, **kwargs: Any) -> FolderWatch:
    path_filter = PathFilter()
    options: dict[str, Any] = {
        "name": "test",
        "root": root,
        "poll": "events",
        "scan_interval_s": 0.2,
        "accept": path_filter,
        "dir_excluded": path_filter.dir_excluded,
        "on_event": rec.on_event,
        "root_check_s": 0.1,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "burst_calm_s": 0.2,
    }
    options.update(kwargs)
    return FolderWatch(**options)


@contextlib.asynccontextmanager
async def running(watch: FolderWatch) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(watch.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "hot"
    path.mkdir()
    return path


def gauge(mode: str) -> float | None:
    return REGISTRY.get_sample_value("jetwatch_watch_mode", {"folder": "test", "mode": mode})


async def test_events_mode_hints_new_file(rec: Recorder, root: Path) -> None:
    """After the first full scan, a new file arrives as a hint; hidden files do not."""
    (root / "old.mov").write_bytes(b"1")
    async with running(make_watch(rec, root)):
        await rec.wait(lambda: rec.full_scans() >= 1, "first full scan")
        assert rec.scanned == {"old.mov"}
        # EVENTS is reported once the first scan's directories are found watched.
        await rec.wait(lambda: in_events(rec), "EVENTS after the audit")
        assert gauge("events") == 1
        assert gauge("scan") == 0
        (root / ".new.mov.Ab12Cd").write_bytes(b"partial")  # rsync temp: no hint
        (root / "new.mov").write_bytes(b"2")
        await rec.wait(lambda: "new.mov" in rec.hinted, "hint for new.mov")
        assert not any(p.startswith(".") for p in rec.hinted)
    assert gauge("events") == 0


async def test_events_mode_scans_new_directory(rec: Recorder, root: Path, tmp_path: Path) -> None:
    """A directory that appears with files already inside is scanned once."""
    staging = tmp_path / "staging"
    (staging / "sub").mkdir(parents=True)
    (staging / "sub" / "a.mov").write_bytes(b"a")
    (staging / "b.mov").write_bytes(b"b")
    async with running(make_watch(rec, root)):
        await rec.wait(lambda: rec.full_scans() >= 1, "first full scan")
        staging.rename(root / "drop")  # no event is ever sent for the files inside
        await rec.wait(
            lambda: any(not r.full and r.subdir == "drop" for r in rec.reports),
            "subdirectory scan",
        )
        assert {"drop/sub/a.mov", "drop/b.mov"} <= rec.scanned
        assert rec.full_scans() == 1
        assert "drop" in rec.hinted
        (root / "x" / "y").mkdir(parents=True)  # created and filled before any watch on it
        (root / "x" / "y" / "quick.mov").write_bytes(b"q")
        await rec.wait(lambda: "x/y/quick.mov" in rec.scanned | rec.hinted, "quick file")


async def test_scan_mode_sees_new_file_on_next_pass(rec: Recorder, root: Path) -> None:
    """In SCAN mode a new file shows up in the next pass (of changed directories), no hints."""
    async with running(make_watch(rec, root, poll="scan")):
        await rec.wait(lambda: rec.full_scans() >= 1, "first full scan")
        assert rec.states[-1] == WatchState(
            WatchMode.SCAN, "poll = scan in config", rec.states[-1].since
        )
        assert rec.reports[0].mode is WatchMode.SCAN
        (root / "later.mov").write_bytes(b"x")
        await rec.wait(lambda: "later.mov" in rec.scanned, "next pass")
        assert rec.hints == []
        assert rec.full_scans() == 1  # the next full walk is reconcile_s away


def seen(rec: Recorder, relpath: str, size: int) -> bool:
    return any(f.relpath == relpath and f.size == size for chunk in rec.chunks for f in chunk)


async def test_scan_passes_list_only_changed_directories(
    rec: Recorder, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New files in deep or renamed-in directories show at the next pass; an in-place rewrite
    (no directory changes) only at the next full walk."""
    monkeypatch.setattr("jetwatch.intake.dirindex.RACY_NS", 0)  # only real directory changes count
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "other").mkdir()
    (root / "quiet").mkdir()
    (root / "quiet" / "still.mov").write_bytes(b"1")
    watch = make_watch(rec, root, poll="scan", reconcile_s=3600)
    async with running(watch):
        await rec.wait(lambda: rec.full_scans() >= 1, "first full scan")
        passes = len(rec.reports)
        await rec.wait(lambda: len(rec.reports) >= passes + 1, "a pass with nothing new")
        assert rec.reports[-1].incremental
        assert rec.reports[-1].files_seen == 0
        (root / "a" / "b" / "c" / "deep.mov").write_bytes(b"22")
        staging = tmp_path / "staging"
        (staging / "sub").mkdir(parents=True)
        (staging / "sub" / "inside.mov").write_bytes(b"333")
        staging.rename(root / "other" / "moved-in")
        with (root / "quiet" / "still.mov").open("ab") as handle:
            handle.write(b"+more")  # rewritten in place: no directory time changes
        await rec.wait(lambda: seen(rec, "a/b/c/deep.mov", 2), "deep new file")
        await rec.wait(lambda: seen(rec, "other/moved-in/sub/inside.mov", 3), "renamed-in dir")
        assert rec.full_scans() == 1
        passes = len(rec.reports)
        await rec.wait(lambda: len(rec.reports) >= passes + 2, "two more passes")
        assert not seen(rec, "quiet/still.mov", 6)
        watch.request_rescan()
        await rec.wait(lambda: rec.full_scans() >= 2, "full walk")
        assert seen(rec, "quiet/still.mov", 6)


async def test_scan_passes_are_full_where_directory_times_lie(
    rec: Recorder, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full walk that finds a directory listing changed under unchanged times turns the
    incremental passes off: from then on every pass walks the whole tree."""
    monkeypatch.setattr("jetwatch.intake.dirindex.RACY_NS", 0)
    (root / "d").mkdir()
    (root / "d" / "a.mov").write_bytes(b"1")
    watch = make_watch(rec, root, poll="scan", reconcile_s=3600)
    async with running(watch):
        await rec.wait(lambda: rec.full_scans() >= 1, "first full scan")
        # What a filesystem without directory times looks like: the index says "d" had
        # other entries than the walk will find, under the same times.
        assert watch._passes.index is not None
        watch._passes.index.dirs["d"].entries += 1
        with structlog.testing.capture_logs() as logs:
            watch.request_rescan()
            await rec.wait(lambda: rec.full_scans() >= 2, "audited full walk")
            await rec.wait(lambda: rec.full_scans() >= 3, "next pass, full again")
        (event,) = [e for e in logs if e["event"] == "scan_every_directory"]
        assert "'d' changed without changing its times" in event["reason"]
        assert not any(r.incremental for r in rec.reports[-2:])


async def test_root_removed_then_recreated(rec: Recorder, root: Path) -> None:
    """A vanished root makes the folder DOWN; when it returns, a full scan resumes it."""
    async with running(make_watch(rec, root)) as task:
        await rec.wait(lambda: rec.full_scans() >= 1, "first full scan")
        shutil.rmtree(root)
        await rec.wait(lambda: bool(rec.states) and rec.states[-1].mode is WatchMode.DOWN, "DOWN")
        assert "missing" in rec.states[-1].reason
        assert gauge("down") == 1
        scans_before = rec.full_scans()
        root.mkdir()
        (root / "back.mov").write_bytes(b"x")
        await rec.wait(lambda: rec.full_scans() > scans_before, "full scan after outage")
        await rec.wait(lambda: in_events(rec), "EVENTS after the audit")
        assert "back.mov" in rec.scanned
        assert not task.done()


async def test_missing_root_at_start_retries(rec: Recorder, tmp_path: Path) -> None:
    """A folder whose root does not exist yet is DOWN until it appears."""
    root = tmp_path / "later"
    async with running(make_watch(rec, root, poll="scan")):
        await rec.wait(lambda: bool(rec.states) and rec.states[-1].mode is WatchMode.DOWN, "DOWN")
        root.mkdir()
        await rec.wait(lambda: rec.full_scans() >= 1, "first full scan")


async def test_burst_triggers_full_rescan(rec: Recorder, root: Path) -> None:
    """A change set larger than burst_threshold still gives its hints (its files start
    settling at once), and a full rescan once it calmed down (events may have been lost)."""
    async with running(make_watch(rec, root, burst_threshold=5)):
        await rec.wait(lambda: rec.full_scans() >= 1, "first full scan")
        for i in range(50):
            (root / f"burst{i}.mov").write_bytes(b"x")
        await rec.wait(lambda: rec.full_scans() >= 2, "rescan after burst")
        await rec.wait(lambda: len(rec.scanned) == 50, "all burst files scanned")
        hinted = set().union(*rec.hints)
        assert any(len(h) > 5 for h in rec.hints), "the burst's own hints were dropped"
        assert {f"burst{i}.mov" for i in range(50)} <= hinted


async def test_request_rescan(rec: Recorder, root: Path) -> None:
    """request_rescan runs a full scan, or a subdirectory scan, on demand."""
    (root / "d").mkdir()
    watch = make_watch(rec, root, poll="scan", scan_interval_s=3600)
    async with running(watch):
        await rec.wait(lambda: rec.full_scans() >= 1, "first full scan")
        (root / "d" / "x.mov").write_bytes(b"x")
        watch.request_rescan("d")
        await rec.wait(lambda: rec.reports[-1].subdir == "d", "subdirectory rescan")
        assert "d/x.mov" in rec.scanned
        watch.request_rescan()
        await rec.wait(lambda: rec.full_scans() >= 2, "requested full scan")
        with pytest.raises(ValueError, match="relative"):
            watch.request_rescan("../etc")


async def test_bad_names_reach_the_loop(rec: Recorder, root: Path) -> None:
    """Unsendable names found by a scan are reported as BadName events, not as files."""
    (root / "odd\nname.mov").write_bytes(b"x")
    report = await make_watch(rec, root).run_once()
    assert report is not None
    assert report.files_seen == 0
    await rec.wait(lambda: bool(rec.bad), "bad name report")
    assert rec.bad == [("odd\nname.mov", "control character in name")]


async def test_run_once_on_missing_root(rec: Recorder, tmp_path: Path) -> None:
    """run_once reports a missing root as DOWN instead of raising."""
    watch = make_watch(rec, tmp_path / "nope")
    assert await watch.run_once() is None
    assert watch.state.mode is WatchMode.DOWN


async def test_callback_error_propagates(rec: Recorder, root: Path) -> None:
    """A bug in a callback crashes run(); it is not mistaken for an outage."""

    def broken(event: WatchEvent) -> None:
        if isinstance(event, ScanChunk):
            raise ZeroDivisionError

    (root / "a.mov").write_bytes(b"x")
    task = asyncio.create_task(make_watch(rec, root, on_event=broken).run())
    with pytest.raises(ZeroDivisionError):
        await asyncio.wait_for(task, TIMEOUT_S)


async def test_watcher_failure_falls_back_to_scan(
    rec: Recorder, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the watcher fails (e.g. inotify limit hit), the folder scans at once, never
    claims EVENTS, and tries events again later."""
    tries: list[int] = []

    def failing_watch(*_args: Any, **_kwargs: Any) -> Iterator[set[Any]]:
        tries.append(1)
        raise OSError("OS file watch limit reached")
        yield set()  # pragma: no cover - makes this a generator

    monkeypatch.setattr("jetwatch.intake.inotify.watch", failing_watch)
    async with running(make_watch(rec, root, events_retry_s=0.2)):
        await rec.wait(
            lambda: any(s.mode is WatchMode.SCAN for s in rec.states), "fallback to SCAN"
        )
        assert rec.states[0].mode is WatchMode.SCAN
        assert "watch limit" in rec.states[-1].reason
        assert "Error(" not in rec.states[-1].reason  # words, not a repr
        await rec.wait(lambda: len(rec.reports) >= 2, "scans in fallback mode")
        await rec.wait(lambda: len(tries) >= 2, "events tried again")
        assert all(s.mode is not WatchMode.EVENTS for s in rec.states)


def watcher_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "watch:test"]


async def test_watcher_thread_gives_hints_and_stops(rec: Recorder, root: Path) -> None:
    """The watcher runs in its own thread, its hints reach the loop, and it ends with run()."""
    task = asyncio.create_task(make_watch(rec, root).run())
    await rec.wait(lambda: rec.full_scans() >= 1, "first full scan")
    (thread,) = watcher_threads()
    assert thread is not threading.current_thread()
    (root / "hello.mov").write_bytes(b"x")
    await rec.wait(lambda: "hello.mov" in rec.hinted, "hint from the thread")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, TIMEOUT_S)
    thread.join(TIMEOUT_S)
    assert not thread.is_alive()
    assert watcher_threads() == []


async def test_cancel_stops_promptly(rec: Recorder, root: Path) -> None:
    """Cancelling run() ends it with CancelledError and clears its mode gauge."""
    for i in range(200):
        (root / f"f{i}.mov").write_bytes(b"x")
    task = asyncio.create_task(make_watch(rec, root).run())
    await rec.wait(lambda: rec.full_scans() >= 1, "first full scan")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, TIMEOUT_S)
    assert gauge("events") == 0


async def test_new_directory_scanned_during_the_first_scan(rec: Recorder, root: Path) -> None:
    """A directory created while the first full scan runs is scanned at once, not after it
    (at a million files the first scan takes seconds)."""
    (root / "old.mov").write_bytes(b"x")
    stalled, release = threading.Event(), threading.Event()
    path_filter = PathFilter()

    def accept(relpath: str) -> bool:
        if relpath == "old.mov":  # the first scan stalls here until the test lets it go
            stalled.set()
            release.wait(TIMEOUT_S)
        return path_filter(relpath)

    try:
        async with running(make_watch(rec, root, accept=accept)):
            assert await asyncio.to_thread(stalled.wait, TIMEOUT_S), "first scan under way"
            (root / "new").mkdir()
            (root / "new" / "x.mov").write_bytes(b"x")
            await rec.wait(lambda: "new/x.mov" in rec.scanned, "new directory scanned")
            assert rec.full_scans() == 0, "the new directory waited for the first scan"
            release.set()
            await rec.wait(lambda: rec.full_scans() >= 1, "first full scan")
    finally:
        release.set()


async def test_whole_tree_walks_of_local_folders_go_one_at_a_time(tmp_path: Path) -> None:
    """While one event-mode folder's first scan runs, another's waits for it (walks are GIL
    bound) though its watcher is up and new directories in it are scanned at once; a
    scan-mode folder (a share that may hang) does not wait."""
    roots = {name: tmp_path / name for name in ("first", "second", "share")}
    for root in roots.values():
        (root / "old.mov").parent.mkdir(parents=True)
        (root / "old.mov").write_bytes(b"x")
    recs = {name: Recorder() for name in roots}
    stalled, release = threading.Event(), threading.Event()
    path_filter = PathFilter()

    def stalling(relpath: str) -> bool:
        stalled.set()
        release.wait(TIMEOUT_S)
        return path_filter(relpath)

    watches = [
        make_watch(recs["first"], roots["first"], name="first", accept=stalling),
        make_watch(recs["second"], roots["second"], name="second"),
        make_watch(recs["share"], roots["share"], name="share", poll="scan"),
    ]
    tasks = [asyncio.create_task(watches[0].run())]
    try:
        assert await asyncio.to_thread(stalled.wait, TIMEOUT_S), "first folder's walk under way"
        tasks += [asyncio.create_task(w.run()) for w in watches[1:]]
        await recs["share"].wait(lambda: recs["share"].full_scans() >= 1, "the share scanned")
        second = recs["second"]

        async def watching() -> None:
            while (feed := watches[1]._feed) is None or not feed.installed.is_set():
                await asyncio.sleep(0.02)

        await asyncio.wait_for(watching(), TIMEOUT_S)  # its watches are up, its walk waits
        (roots["second"] / "new").mkdir()
        (roots["second"] / "new" / "x.mov").write_bytes(b"x")
        await second.wait(lambda: "new/x.mov" in second.scanned, "its new directory scanned")
        assert second.full_scans() == 0, "the second walk ran beside the first"
        assert "old.mov" not in second.scanned  # ... nor did it start
        release.set()
        await second.wait(lambda: second.full_scans() >= 1, "the second walk after the first")
        assert recs["first"].full_scans() >= 1
    finally:
        release.set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
