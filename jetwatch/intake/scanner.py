"""One scan of a watched folder: the tree walked in a worker thread, chunk by chunk, as events.

The walking itself (blocking I/O) is :mod:`jetwatch.intake.scan`; this runs it off the
loop, filters each chunk there, hands chunks to the intake as :class:`ScanChunk` events
and ends with a :class:`ScanDone` report.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import structlog

from jetwatch.domain.settle import FileStat
from jetwatch.intake.dirindex import DirIndex
from jetwatch.intake.events import BadName, NotRegular, ScanChunk, ScanDone, WatchEvent
from jetwatch.intake.mounts import WatchMode
from jetwatch.intake.scan import DirsSeen, ScanReport, next_chunk, scan_changed, scan_tree

log = structlog.get_logger(__name__)

# Whole-tree walks of event-mode (local) folders at once, per daemon: a walk is Python bound
# by the GIL, so more threads only thrash. 200 folders × 5,000 files: all first scans done
# 36 s after their watches with six at once, 25 s with two, about 18 s with one, and RSS
# 304 → 219 MB. Their watches are in place meanwhile (hints flow, new directories are
# scanned at once); shares (scan mode) are not limited: one that hangs must not hold up
# the others.
LOCAL_WALKS_AT_ONCE = 1
_WALKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _walk_slot(loop: asyncio.AbstractEventLoop) -> asyncio.Semaphore:
    slot = _WALKS.get(loop)
    if slot is None:
        slot = _WALKS[loop] = asyncio.Semaphore(LOCAL_WALKS_AT_ONCE)
    return slot


ScanFilter = Callable[[list[FileStat]], list[FileStat]]


class FolderDown(Exception):
    """The folder cannot be watched right now (root missing, replaced, watcher broken)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WatcherFailed(Exception):
    """The event watcher failed or its watch is incomplete: scans take over for a while."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SubdirGone(Exception):
    """A directory to scan went away (or became unreadable) before it was listed."""


class TreeScanner:
    """Scans one folder's tree; ``accept``, ``dir_excluded`` and ``scan_filter`` run in the
    worker thread and must be pure."""

    def __init__(
        self,
        *,
        name: str,
        root: Path,
        accept: Callable[[str], bool],
        dir_excluded: Callable[[str], bool],
        on_event: Callable[[WatchEvent], None],
        chunk_files: int,
        scan_filter: ScanFilter | None,
    ) -> None:
        self.name = name
        self.root = root
        self._accept = accept
        self._dir_excluded = dir_excluded
        self._on_event = on_event
        self._chunk_files = chunk_files
        self._scan_filter = scan_filter

    async def scan(
        self,
        subdir: str,
        mode: WatchMode,
        mode_reason: str,
        check_root: Callable[[], Awaitable[None]],
        *,
        record: DirIndex | None = None,
        changed: DirIndex | None = None,
        dirs_seen: DirsSeen | None = None,
    ) -> ScanReport | None:
        """Scan ``subdir`` ("" = all) in a worker thread, one chunk at a time.

        ``record`` notes every directory walked, ``dirs_seen`` every subdirectory found;
        ``changed`` makes it a pass over the directories of that index whose times changed.
        Pulling chunk by chunk keeps memory bounded and the loop responsive; ``cancelled``
        stops the worker soon after this coroutine is cancelled. ``check_root`` raises
        FolderDown when the root went away: a full scan ends with it, so an unmount during
        the scan is an outage, not emptiness. None when the subdirectory went away before
        it was listed.
        """
        dir_errors: list[str] = []
        stop = threading.Event()
        whole_local = not subdir and changed is None and mode is WatchMode.EVENTS
        slot = _walk_slot(asyncio.get_running_loop()) if whole_local else None
        files_seen = 0
        async with slot or contextlib.nullcontext():
            chunks = self._chunks(subdir, record, changed, stop, dir_errors, dirs_seen)
            started = time.monotonic()
            try:
                while (pulled := await self._pull(chunks, subdir, check_root)) is not None:
                    files_seen += pulled[0]
                    if pulled[1]:
                        self._on_event(ScanChunk(pulled[1]))
            except SubdirGone:
                return None
            finally:
                stop.set()
        if not subdir:
            await check_root()
        duration_s = time.monotonic() - started
        incremental = changed is not None
        return self._report(
            subdir, files_seen, duration_s, len(dir_errors), incremental, mode, mode_reason
        )

    def _chunks(
        self,
        subdir: str,
        record: DirIndex | None,
        changed: DirIndex | None,
        stop: threading.Event,
        dir_errors: list[str],
        dirs_seen: DirsSeen | None,
    ) -> Iterator[list[FileStat]]:
        """The scan's chunk iterator, to be pulled from a worker thread."""
        loop = asyncio.get_running_loop()

        def bad_name(rel: str, why: str) -> None:
            loop.call_soon_threadsafe(self._on_event, BadName(rel, why))

        def special(rel: str, kind: str) -> None:
            loop.call_soon_threadsafe(self._on_event, NotRegular(rel, kind))

        def dir_error(rel: str, _exc: OSError) -> None:
            dir_errors.append(rel)

        accept, excluded, chunk_files = self._accept, self._dir_excluded, self._chunk_files
        if changed is not None:
            return scan_changed(self.root, changed, accept=accept, dir_excluded=excluded,
                                on_bad_name=bad_name, chunk_files=chunk_files,
                                on_dir_error=dir_error, cancelled=stop.is_set,
                                on_special=special)  # fmt: skip
        return scan_tree(self.root, accept=accept, dir_excluded=excluded, on_bad_name=bad_name,
                         subdir=subdir, chunk_files=chunk_files, on_dir_error=dir_error,
                         cancelled=stop.is_set, index=record, dirs_seen=dirs_seen,
                         on_special=special)  # fmt: skip

    async def _pull(
        self,
        chunks: Iterator[list[FileStat]],
        subdir: str,
        check_root: Callable[[], Awaitable[None]],
    ) -> tuple[int, list[FileStat]] | None:
        """Next chunk from the worker thread (files found, those kept); translates a failure
        to open the start directory."""
        try:
            return await asyncio.to_thread(next_chunk, chunks, self._scan_filter)
        except OSError as exc:
            if not subdir:
                raise FolderDown(f"root {self.root} cannot be scanned: {exc.strerror}") from exc
            await check_root()
            log.debug("subdir_scan_skipped", folder=self.name, subdir=subdir, error=exc.strerror)
            raise SubdirGone(subdir) from exc

    def _report(
        self,
        subdir: str,
        files_seen: int,
        duration_s: float,
        errors: int,
        incremental: bool,
        mode: WatchMode,
        mode_reason: str,
    ) -> ScanReport:
        report = ScanReport(
            full=not subdir and not incremental,
            subdir=subdir,
            files_seen=files_seen,
            duration_s=duration_s,
            finished_at=time.time(),
            mode=mode,
            mode_reason=mode_reason,
            dir_errors=errors,
            incremental=incremental,
        )
        if incremental:
            log.debug("changed_dirs_scanned", folder=self.name, files=files_seen)
        else:
            event = "scan_finished" if report.full else "subdir_scanned"
            log.info(event, folder=self.name, subdir=subdir, files=files_seen, dir_errors=errors)
        self._on_event(ScanDone(report))
        return report
