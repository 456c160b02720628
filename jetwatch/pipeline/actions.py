"""Post-actions after a delivery succeeded (keep / move / delete) or a file was given up.

Idempotent and retried until done: a file already gone counts as done, a file changed
since it was delivered is a new version and is left alone (it will be delivered itself),
a move never overwrites (a numbered suffix is added), and empty subdirectories left behind
are removed up to, never including, the watched folder.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import shutil
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from jetwatch import metrics
from jetwatch.config.settings import FolderSettings
from jetwatch.domain.clock import SYSTEM_CLOCK, Clock
from jetwatch.domain.settle import file_marker
from jetwatch.domain.states import ActionOutcome, FileRow, FileState
from jetwatch.domain.store import LedgerStore
from jetwatch.domain.wake import Stage, Wakeups, run_stage

log = structlog.get_logger(__name__)
_stdlib_log = logging.getLogger(__name__)

RETRY_S = 30.0
IDLE_S = 60.0  # tracker and ops ring ACTIONS; retries are scheduled: this is a safety net
PAGE = 500


def free_name(target: Path) -> Path:
    """``target`` or the first ``name.N.ext`` that does not exist yet."""
    if not target.exists():
        return target
    stem, suffix = target.name.split(".", 1) if "." in target.name else (target.name, "")
    for n in range(1, 10_000):
        candidate = target.with_name(f"{stem}.{n}.{suffix}" if suffix else f"{stem}.{n}")
        if not candidate.exists():
            return candidate
    raise FileExistsError(f"no free name for {target}")


def move_file(source: Path, target: Path) -> Path:
    """Move without overwriting; across filesystems copy to a temp name, rename, unlink."""
    target.parent.mkdir(parents=True, exist_ok=True)
    final = free_name(target)
    try:
        os.rename(source, final)
    except OSError as exc:
        if exc.errno != errno.EXDEV:  # another filesystem
            raise
        tmp = final.with_name(f".{final.name}.jetwatch-tmp")
        shutil.copy2(source, tmp)
        os.rename(tmp, free_name(final))
        os.unlink(source)
    return final


def prune_empty_dirs(start: Path, root: Path) -> None:
    """Remove empty directories from ``start`` upwards, stopping below ``root``."""
    current = start
    while current != root and root in current.parents:
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent


def is_same_version(path: Path, row: FileRow) -> bool:
    st = os.stat(path, follow_symlinks=False)
    return (st.st_size, st.st_mtime_ns, st.st_ino) == (row.size, row.mtime_ns, row.inode)


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What a post-action did to one file, and where a moved file went."""

    outcome: ActionOutcome
    moved_to: Path | None = None

    @property
    def text(self) -> str:
        """The result as the ``post_action`` log line says it."""
        if self.outcome is ActionOutcome.MOVED:
            return f"moved to {self.moved_to}"
        if self.outcome is ActionOutcome.CHANGED:
            return "changed since delivery: left for the next delivery"
        return self.outcome.value.replace("_", " ")


def planned_action(folder: FolderSettings, row: FileRow) -> tuple[str, Path | None]:
    """("keep" | "move" | "delete", the directory a move goes to) for one row."""
    failed = row.state == FileState.FAILED
    target_dir = folder.failed_dir if failed else folder.done_dir
    return (("move" if target_dir else "keep") if failed else folder.post_action), target_dir


def os_error_text(exc: OSError) -> str:
    """An OSError as people read it: what went wrong, on which path(s), and a hint."""
    said = exc.strerror or str(exc) or type(exc).__name__
    paths = [os.fsdecode(p) for p in (exc.filename, exc.filename2) if p is not None]
    text = f"{said}: {' -> '.join(paths)}" if paths else said
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        text += " (jetwatch's user must be allowed to write there)"
    elif exc.errno == errno.ENOSPC:
        text += " (the disk is full)"
    return text


def action_error_text(folder: FolderSettings, row: FileRow, exc: OSError) -> str:
    """``post-action move to /done/x.mov failed: Permission denied: /done (...)``."""
    action, target_dir = planned_action(folder, row)
    where = f" to {target_dir / row.relpath}" if action == "move" and target_dir else ""
    return (
        f"post-action {action}{where} of {folder.path / row.relpath} failed: {os_error_text(exc)}"
    )


def apply_action(folder: FolderSettings, row: FileRow) -> ActionResult:
    """Do the post-action for one row (blocking: runs in a worker thread)."""
    action, target_dir = planned_action(folder, row)
    if action == "keep":
        return ActionResult(ActionOutcome.KEPT)
    source = folder.path / row.relpath
    try:
        if not is_same_version(source, row):
            return ActionResult(ActionOutcome.CHANGED)
    except FileNotFoundError:
        if not folder.path.is_dir():
            # A share that dropped hides its files: not gone, retried until it is back.
            raise FileNotFoundError(
                errno.ENOENT, "watched folder unavailable", str(folder.path)
            ) from None
        return ActionResult(ActionOutcome.ALREADY_GONE)
    marker = Path(file_marker(str(source), folder.ready_marker)) if folder.ready_marker else None
    if action == "delete":
        source.unlink()
        if marker is not None:
            marker.unlink(missing_ok=True)
        result = ActionResult(ActionOutcome.DELETED)
    else:
        assert target_dir is not None
        final = move_file(source, target_dir / row.relpath)
        if marker is not None and marker.exists():
            move_file(marker, Path(file_marker(str(final), folder.ready_marker)))
        result = ActionResult(ActionOutcome.MOVED, final)
    prune_empty_dirs(source.parent, folder.path)
    return result


def _apply_all(rows: list[tuple[FolderSettings, FileRow]]) -> list[ActionResult | OSError]:
    """One worker-thread hop for a whole page of rows."""
    results: list[ActionResult | OSError] = []
    for folder, row in rows:
        try:
            results.append(apply_action(folder, row))
        except OSError as exc:
            results.append(exc)
    return results


class PostActions:
    """Applies post-actions to TRANSFERRED and FAILED files; retries errors."""

    def __init__(
        self,
        ledger: LedgerStore,
        folders: Callable[[], Mapping[str, FolderSettings]],
        *,
        wakeups: Wakeups,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._ledger = ledger
        self._folders = folders
        self._wakeups = wakeups
        self._clock = clock
        self._retry_at: dict[int, float] = {}  # file id → monotonic time of its next try

    async def run(self) -> None:
        async def step() -> float | None:
            # A full page: more may be waiting, go on at once.
            return self._clock.monotonic() if await self.run_once() else self.next_retry_at()

        await run_stage(self._wakeups, Stage.ACTIONS, step, clock=self._clock, idle_s=IDLE_S)

    def next_retry_at(self) -> float | None:
        """When the next failed action is due again (monotonic; None: none waits)."""
        now = self._clock.monotonic()
        return min((t for t in self._retry_at.values() if t > now), default=None)

    async def run_once(self) -> bool:
        """Handle pending rows; True when a full page was handled (more may be waiting)."""
        folders = self._folders()
        now = self._clock.monotonic()
        rows = [
            (folders[row.folder], row)
            for row in await self._ledger.pending_actions(limit=PAGE)
            if row.folder in folders and self._retry_at.get(row.id, 0.0) <= now
        ]
        results = await asyncio.to_thread(_apply_all, rows)
        done: list[int] = []
        handled: list[int] = []
        outcomes: Counter[ActionOutcome] = Counter()
        # One check per page: a filtered-out debug call still costs ~10 us, times 100,000.
        each = _stdlib_log.isEnabledFor(logging.DEBUG)
        for (folder, row), result in zip(rows, results, strict=True):
            if isinstance(result, OSError):
                await self._error(row, action_error_text(folder, row, result), now)
                continue
            self._retry_at.pop(row.id, None)
            (handled if row.state == FileState.FAILED else done).append(row.id)
            outcomes[result.outcome] += 1
            if row.state == FileState.FAILED or result.outcome is ActionOutcome.CHANGED:
                # Rare and worth a line each: a given-up file moved, a file left in place.
                log.info("post_action", folder=row.folder, path=row.relpath, result=result.text)
            elif each:
                # Routine results cost ~44 us a line at info: a third of a burst's CPU.
                log.debug("post_action", folder=row.folder, path=row.relpath, result=result.text)
        if outcomes:
            counts = {outcome.value: n for outcome, n in outcomes.items()}
            log.info("post_actions_applied", files=sum(outcomes.values()), **counts)
        if done:
            await self._ledger.mark_done(done, self._clock.wall())
            # A newer version of a path waits until the older one is DONE.
            self._wakeups.wake(Stage.BATCH)
        if handled:
            await self._ledger.mark_failed_handled(handled, self._clock.wall())
        return len(done) + len(handled) >= PAGE

    async def _error(self, row: FileRow, message: str, now: float) -> None:
        self._retry_at[row.id] = now + RETRY_S
        await self._ledger.set_error(row.id, message, self._clock.wall())
        metrics.POST_ACTION_ERRORS.labels(row.folder).inc()
        log.warning(
            "post_action_failed",
            folder=row.folder,
            path=row.relpath,
            error=message,
            retry_in_s=RETRY_S,
        )
