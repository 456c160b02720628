"""Tests of FolderWatch on real folders with real watchfiles: hints, scans, outages."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from jetwatch.filters import PathFilter
from jetwatch.metrics import REGISTRY
from jetwatch.settle import FileStat
from jetwatch.watch import FolderWatch, ScanReport, WatchMode, WatchState

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


def make_watch(rec: Recorder, root: Path, **kwargs: Any) -> FolderWatch:
    path_filter = PathFilter()
    options: dict[str, Any] = {
        "name": "test",
        "root": root,
        "poll": "events",
        "scan_interval_s": 0.2,
        "accept": path_filter,
        "dir_excluded": path_filter.dir_excluded,
        "on_bad_name": rec.on_bad_name,
        "on_hints": rec.on_hints,
        "on_scan_chunk": rec.on_scan_chunk,
        "on_scan_done": rec.on_scan_done,
        "on_state": rec.on_state,
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
        assert rec.states[-1].mode is WatchMode.EVENTS
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


async def test_scan_mode_sees_new_file_on_next_scan(rec: Recorder, root: Path) -> None:
    """In SCAN mode a new file shows up in the next periodic full scan, without hints."""
    async with running(make_watch(rec, root, poll="scan")):
        await rec.wait(lambda: rec.full_scans() >= 1, "first full scan")
        assert rec.states[-1] == WatchState(
            WatchMode.SCAN, "poll = scan in config", rec.states[-1].since
        )
        assert rec.reports[0].mode is WatchMode.SCAN
        (root / "later.mov").write_bytes(b"x")
        await rec.wait(
            lambda: "later.mov" in rec.scanned and rec.full_scans() >= 2, "periodic scan"
        )
        assert rec.hints == []


async def test_root_removed_then_recreated(rec: Recorder, root: Path) -> None:
    """A vanished root makes the folder DOWN; when it returns, a full scan resumes it."""
    async with running(make_watch(rec, root)) as task:
        await rec.wait(lambda: rec.full_scans() >= 1, "first full scan")
        shutil.rmtree(root)
        await rec.wait(lambda: rec.states[-1].mode is WatchMode.DOWN, "DOWN")
        assert "missing" in rec.states[-1].reason
        assert gauge("down") == 1
        scans_before = rec.full_scans()
        root.mkdir()
        (root / "back.mov").write_bytes(b"x")
        await rec.wait(lambda: rec.full_scans() > scans_before, "full scan after outage")
        assert rec.states[-1].mode is WatchMode.EVENTS
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
    """A change set larger than burst_threshold gives no hints but a full rescan."""
    async with running(make_watch(rec, root, burst_threshold=5)):
        await rec.wait(lambda: rec.full_scans() >= 1, "first full scan")
        for i in range(50):
            (root / f"burst{i}.mov").write_bytes(b"x")
        await rec.wait(lambda: rec.full_scans() >= 2, "rescan after burst")
        await rec.wait(lambda: len(rec.scanned) == 50, "all burst files scanned")
        assert all(len(h) <= 5 for h in rec.hints)


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
    """Unsendable names found by a scan are reported through on_bad_name, not as files."""
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

    def broken(_files: list[FileStat]) -> None:
        raise ZeroDivisionError

    (root / "a.mov").write_bytes(b"x")
    task = asyncio.create_task(make_watch(rec, root, on_scan_chunk=broken).run())
    with pytest.raises(ZeroDivisionError):
        await asyncio.wait_for(task, TIMEOUT_S)


async def test_watcher_failure_falls_back_to_scan(
    rec: Recorder, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When awatch fails (e.g. inotify limit hit), the folder goes DOWN, then scans."""

    async def failing_awatch(*_args: Any, **_kwargs: Any) -> AsyncIterator[set[Any]]:
        raise OSError("OS file watch limit reached")
        yield set()  # pragma: no cover - makes this an async generator

    monkeypatch.setattr("jetwatch.watch.awatch", failing_awatch)
    async with running(make_watch(rec, root)):
        await rec.wait(
            lambda: any(s.mode is WatchMode.SCAN for s in rec.states), "fallback to SCAN"
        )
        modes = [s.mode for s in rec.states]
        assert modes[:3] == [WatchMode.EVENTS, WatchMode.DOWN, WatchMode.SCAN]
        assert "watch limit" in rec.states[-1].reason
        await rec.wait(lambda: rec.full_scans() >= 2, "scans in fallback mode")


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
