"""Intake for one folder: watch hints and scans → settle → STABLE rows in the ledger.

The watcher says *where* to look; this module stats, asks the settler whether a file is
complete and records it. Files the ledger already knows (same path, size, mtime, inode)
are skipped at once, so a restart or a reconcile scan never queues a delivered file again.
When the ledger cannot be written (disk full) settled files wait in memory and intake is
reported as blocked; nothing is dropped.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from jetwatch import metrics
from jetwatch.config.settings import FolderSettings
from jetwatch.domain.clock import SYSTEM_CLOCK, Clock
from jetwatch.domain.settle import FileStat, Settler
from jetwatch.domain.states import FileKey
from jetwatch.domain.store import LedgerStore, key_fingerprint, unknown_files
from jetwatch.domain.versions import notice_text, version_notice
from jetwatch.domain.wake import Stage, Wakeups, sleep_or_wake
from jetwatch.errors import LedgerUnavailableError
from jetwatch.intake.events import (
    BadName,
    Hints,
    NotRegular,
    ScanChunk,
    ScanDone,
    StateChanged,
    WatchEvent,
)
from jetwatch.intake.filters import PathFilter, name_problem
from jetwatch.intake.mounts import WatchMode, WatchState
from jetwatch.intake.scan import ScanReport, stat_paths, with_markers
from jetwatch.intake.startgate import StartGate
from jetwatch.intake.watcher import FolderWatch

log = structlog.get_logger(__name__)

MIN_TICK_S = 0.05
MAX_TICK_S = 1.0  # while files settle or wait for the ledger
# Nothing pending: hints, scans and files found gone ring the bell, this is a safety net.
IDLE_TICK_S = 30.0
# Files a settle round stats or records in one go, between which the loop serves others.
# Beside a burst's other threads the loop's share of the GIL is small: a slice of 2,000
# held it 30-66 ms a step (asyncio's slow-callback log), one of 500 at most 42 ms.
SLICE_FILES = 500
# Settled files the ledger records in one call: a PostgreSQL round trip per 500 made its
# 100,000-file burst 3.4 times SQLite's; 2,000 keeps it within 2 times.
RECORD_FILES = 2000
BAD_NAMES_REMEMBERED = 10_000
NOTICES_KEPT = 20


@dataclass(frozen=True, slots=True)
class IntakeHealth:
    """What readiness and status need to know about one folder's intake."""

    first_scan_done: bool
    mode: str
    reason: str
    blocked: str  # "" unless settled files cannot be recorded


class FolderIntake:
    """Owns one folder's watcher and settler; a long-lived component with ``run()``."""

    def __init__(
        self,
        folder: FolderSettings,
        ledger: LedgerStore,
        *,
        wakeups: Wakeups,
        clock: Clock = SYSTEM_CLOCK,
        gate: StartGate | None = None,
    ) -> None:
        self.folder = folder
        self._gate = gate or StartGate(1)
        self._arrived = False
        self.label = folder.label
        self._ledger = ledger
        self._wakeups = wakeups
        self._clock = clock
        self._filter = PathFilter(folder.include, folder.exclude, folder.ready_marker)
        self._settler = Settler(
            folder.settle_seconds, growing=folder.growing, require_marker=bool(folder.ready_marker)
        )
        self._known: set[int] = set()
        self._dirty: set[str] = set()
        # Settled, not yet in the ledger (it cannot be written): the newest stat per path,
        # so scans repeated while the disk is full do not pile up copies.
        self._unrecorded: dict[str, FileStat] = {}
        self._bad_names: set[str] = set()
        self._wake = wakeups.intake_bell(self.label)  # files_gone rings it too
        self._first_scan = asyncio.Event()
        self._state = WatchState(WatchMode.SCAN, "starting", clock.wall())
        self._blocked = ""
        self._last_full_scan: ScanReport | None = None  # to record in the ledger
        # The latest version warnings (what /status and `jetwatch status` show).
        self.notices: deque[dict[str, object]] = deque(maxlen=NOTICES_KEPT)
        self.watch = FolderWatch(
            name=self.label,
            root=folder.path,
            poll=folder.poll,
            scan_interval_s=folder.scan_interval_seconds,
            reconcile_s=folder.reconcile_seconds,
            accept=self._filter.scanned_file,
            dir_excluded=self._filter.dir_excluded,
            on_event=self._on_event,
            scan_filter=self._unknown,
        )

    @property
    def health(self) -> IntakeHealth:
        state = self._state
        return IntakeHealth(self._first_scan.is_set(), str(state.mode), state.reason, self._blocked)

    def oldest_pending_age_s(self) -> float | None:
        """How long the oldest file not yet in the ledger has been waiting (None: none)."""
        oldest = self._settler.oldest_since()
        if oldest is None:
            return 0.0 if self._unrecorded else None
        return max(0.0, self._clock.monotonic() - oldest)

    def forget(self, keys: Iterable[FileKey]) -> None:
        """Files found GONE before they were sent: if they come back unchanged, look again."""
        for k in keys:
            self._known.discard(key_fingerprint(k.relpath, k.size, k.mtime_ns, k.inode))

    def leave_gate(self) -> None:
        """Arrive at the start gate (once), so the others need not wait for this one; also
        called when the task ends, for a task cancelled before it ever ran."""
        if not self._arrived:
            self._arrived = True
            self._gate.arrive()

    async def wait_first_scan(self) -> None:
        await self._first_scan.wait()

    async def run(self) -> None:
        try:
            self._known = await self._ledger.known_fingerprints(self.label)
        finally:
            self.leave_gate()
        await self._gate.passed()  # the folders started with this one have read theirs
        log.info("intake_started", folder=self.label, known_files=len(self._known))
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.watch.run(), name=f"watch:{self.label}")
            tg.create_task(self._settle_loop(), name=f"settle:{self.label}")

    async def _settle_loop(self) -> None:
        while True:
            self._wake.clear()
            started = self._clock.monotonic()
            now = await self.run_once()
            next_due = self._settler.next_due(now)
            if next_due is None:
                delay = MAX_TICK_S if self._unrecorded or self._settler else IDLE_TICK_S
            else:
                delay = min(MAX_TICK_S, max(MIN_TICK_S, next_due - now))
            await sleep_or_wake(self._wake, delay)
            # At most one round per MIN_TICK_S, so the hints of a burst gather instead of a
            # stat after every event; a file due or hinted after a quiet spell goes at once.
            spare = MIN_TICK_S - (self._clock.monotonic() - started)
            if spare > 0:
                await asyncio.sleep(spare)

    async def run_once(self) -> float:
        """Re-stat what is due or hinted, record what settled; returns the time used."""
        gone = self._wakeups.take_gone(self.label)
        self.forget(gone)
        now = self._clock.monotonic()  # the settler's clock: settle_seconds survive steps
        # Files found gone are looked at again: a scan that ran before they were forgotten
        # took them for known (a share back from an unmount at that moment).
        # Due files first, oldest first: their second look makes them ready, so the first
        # slices of a burst already feed the ledger and the batcher.
        due = self._settler.due(now)
        fresh = (self._dirty | {k.relpath for k in gone}).difference(due)
        paths = [*due, *fresh]
        self._dirty = set()
        # In slices: the loop serves others between them (a burst hints 15,000 paths at once).
        # What the slices confirmed is recorded once RECORD_FILES wait, before the next slice
        # is looked at, so batches form while the rest of a burst is still being stat-ed.
        recording = True
        for start in range(0, len(paths), SLICE_FILES):
            stats, vanished = await self._stat(set(paths[start : start + SLICE_FILES]))
            now = self._clock.monotonic()
            self._observe(stats, now)
            for relpath in vanished:
                if self._settler.vanished(relpath):
                    metrics.FILES_VANISHED.labels(self.label).inc()
                    log.info("file_vanished_before_settle", folder=self.label, path=relpath)
            self._take_ready(now)
            while recording and len(self._unrecorded) >= RECORD_FILES:
                recording = await self._record(self._clock.wall())
        self._take_ready(now)  # also what scans confirmed meanwhile
        if recording:
            await self._record_all()
        if self._last_full_scan is not None:
            await self._record_scan(self._last_full_scan)
        return now

    async def _record_scan(self, report: ScanReport) -> None:
        self._last_full_scan = None
        try:
            await self._ledger.record_scan(
                self.label,
                mode=str(report.mode),
                mode_reason=report.mode_reason,
                finished_at=report.finished_at,
                files_seen=report.files_seen,
                duration_s=report.duration_s,
            )
        except LedgerUnavailableError as exc:
            log.warning("scan_not_recorded", folder=self.label, error=str(exc))

    async def _stat(self, paths: set[str]) -> tuple[list[FileStat], list[str]]:
        root, marker = self.folder.path, self.folder.ready_marker

        specials: list[tuple[str, str]] = []

        def stat_marked() -> tuple[list[FileStat], list[str]]:
            found, vanished = stat_paths(
                root, paths, lambda rel, kind: specials.append((rel, kind))
            )
            return with_markers(root, found, marker), vanished

        found = await asyncio.to_thread(stat_marked)
        for relpath, kind in specials:
            self._not_regular(relpath, kind)
        return found

    def _unknown(self, files: list[FileStat]) -> list[FileStat]:
        """The files whose key the ledger does not hold; runs in the scan's worker thread.

        Only reads ``self._known`` (a set the loop adds to: each operation is atomic).
        """
        unknown = unknown_files(files, self._known)
        return with_markers(self.folder.path, unknown, self.folder.ready_marker)

    def _observe(self, stats: Iterable[FileStat], now: float) -> None:
        known, unrecorded, settler = self._known, self._unrecorded, self._settler
        detected = 0
        for st in stats:
            if key_fingerprint(st.relpath, st.size, st.mtime_ns, st.inode) in known:
                continue
            if unrecorded and unrecorded.get(st.relpath) == st:
                continue  # settled already, waiting for the ledger
            if st.relpath not in settler:
                detected += 1
            settler.observe(st, now)
        if detected:
            # Once per chunk: a labelled counter costs a lookup and a lock per call.
            metrics.FILES_DETECTED.labels(self.label).inc(detected)

    def _take_ready(self, now: float) -> None:
        """Files found complete leave the settler for the queue of files to record."""
        self._unrecorded.update((st.relpath, st) for st in self._settler.ready(now))

    async def _record_all(self) -> bool:
        """Record every settled file; False when the ledger refused them (blocked)."""
        while self._unrecorded:
            if not await self._record(self._clock.wall()):
                return False
        return True

    async def _record(self, now: float) -> bool:
        """Record up to RECORD_FILES settled files; False when the ledger refused them."""
        part = list(itertools.islice(self._unrecorded.values(), RECORD_FILES))
        keys = [FileKey(s.relpath, s.size, s.mtime_ns, s.inode) for s in part]
        try:
            new_ids = await self._ledger.add_stable(self.label, keys, now)
        except LedgerUnavailableError as exc:
            if not self._blocked:
                waiting = len(self._unrecorded)
                log.error("intake_blocked", folder=self.label, error=str(exc), waiting=waiting)
            self._blocked = f"ledger unavailable: {exc}"
            return False
        if self._blocked:
            log.info("intake_resumed", folder=self.label, recorded=len(keys))
            self._blocked = ""
        self._known.update(key_fingerprint(k.relpath, k.size, k.mtime_ns, k.inode) for k in keys)
        for st in part:
            del self._unrecorded[st.relpath]  # only run_once changes it, not meanwhile
        if new_ids:
            metrics.FILES_SETTLED.labels(self.label).inc(len(new_ids))
            log.debug("files_settled", folder=self.label, count=len(new_ids))
            self._wakeups.wake(Stage.BATCH)
            await self._check_versions(new_ids)
        return True

    async def _check_versions(self, new_ids: list[int]) -> None:
        """Warn about new versions Jet will skip or that a paused writer produced."""
        try:
            earlier = await self._ledger.earlier_versions(self.label, new_ids)
        except LedgerUnavailableError as exc:
            log.warning("versions_not_checked", folder=self.label, error=str(exc))
            return
        for version in earlier:
            notice = version_notice(version, self.folder.settle_seconds)
            if notice is None:
                continue
            metrics.VERSION_NOTICES.labels(self.label, notice.value).inc()
            text = notice_text(notice)
            self.notices.append({"path": version.new.relpath, "kind": notice.value, "text": text,
                                 "at": self._clock.wall()})  # fmt: skip
            log.warning(
                f"file_{notice.value}",
                folder=self.label,
                path=version.new.relpath,
                size=version.new.size,
                sent_size=version.old.size,
                problem=text,
            )

    # watcher events (on the event loop)
    def _on_event(self, event: WatchEvent) -> None:
        match event:
            case Hints(paths):
                self._hints(paths)
            case ScanChunk(files):
                self._observe(files, self._clock.monotonic())
                self._wake.set()
            case ScanDone(report):
                self._scan_done(report)
            case StateChanged(state):
                self._state = state
            case BadName(relpath, problem):
                self._bad_name(relpath, problem)
            case NotRegular(relpath, kind):
                self._not_regular(relpath, kind)

    def _hints(self, paths: set[str]) -> None:
        for relpath in paths:
            if not self._filter(relpath):
                continue
            problem = name_problem(relpath)
            if problem is None:
                self._dirty.add(relpath)
            else:
                # Scans report these too, but in EVENTS mode the next full scan may be
                # many minutes away: say so when the file arrives.
                self._bad_name(relpath, problem)
        if self._dirty:
            self._wake.set()

    def _scan_done(self, report: ScanReport) -> None:
        if report.full:
            self._first_scan.set()
            metrics.SCAN_DURATION.labels(self.label).observe(report.duration_s)
            metrics.SCAN_FILES.labels(self.label).set(report.files_seen)
            self._last_full_scan = report  # recorded in the ledger by the settle loop
            self._wake.set()
        # A SCAN-mode pass over changed directories runs every few seconds: debug only.
        (log.debug if report.incremental else log.info)(
            "scan_done",
            folder=self.label,
            full=report.full,
            incremental=report.incremental,
            subdir=report.subdir,
            files=report.files_seen,
            seconds=round(report.duration_s, 3),
            pending=len(self._settler),
        )

    def _not_regular(self, relpath: str, kind: str) -> None:
        """Symlinks (never followed), FIFOs, sockets, devices: said once per path, counted."""
        if relpath in self._bad_names:
            return
        if len(self._bad_names) < BAD_NAMES_REMEMBERED:
            self._bad_names.add(relpath)
        metrics.FILES_IGNORED.labels(self.label, kind).inc()
        log.info("file_type_skipped", folder=self.label, path=ascii(relpath), kind=kind)

    def _bad_name(self, relpath: str, problem: str) -> None:
        if relpath in self._bad_names:
            return
        if len(self._bad_names) < BAD_NAMES_REMEMBERED:
            self._bad_names.add(relpath)
        metrics.FILES_IGNORED.labels(self.label, problem).inc()
        log.warning("file_name_skipped", folder=self.label, path=ascii(relpath), problem=problem)
