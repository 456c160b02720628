"""The daemon's running intakes: one per folder it may act on, replaced as config and
leases change. Work in flight lives in the ledger, so an intake can stop at any time."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import structlog

from jetwatch.config.settings import FolderSettings
from jetwatch.domain.store import LedgerStore
from jetwatch.domain.wake import Wakeups
from jetwatch.intake.folder import FolderIntake
from jetwatch.intake.startgate import StartGate
from jetwatch.pipeline.ownership import FolderOwnership

log = structlog.get_logger(__name__)

INTAKE_STOP_S = 5.0  # a reloaded folder's old intake gets this long to stop


class Intakes:
    """Starts, stops and replaces FolderIntakes in the daemon's TaskGroup.

    ``folders`` is the daemon's own mapping of configured folders (changed by ``apply``);
    ``by_label`` the intakes running now, for readiness, status and tests.
    """

    def __init__(
        self,
        ledger: LedgerStore,
        wakeups: Wakeups,
        folders: dict[str, FolderSettings],
        ownership: FolderOwnership,
    ) -> None:
        self._ledger = ledger
        self._wakeups = wakeups
        self._folders = folders
        self._ownership = ownership
        self.by_label: dict[str, FolderIntake] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._tg: asyncio.TaskGroup | None = None

    def bind(self, tg: asyncio.TaskGroup) -> None:
        """The TaskGroup intakes run in (a crashed intake stops the daemon)."""
        self._tg = tg

    def start(self, folder: FolderSettings, gate: StartGate | None = None) -> None:
        assert self._tg is not None, "bind() first"
        intake = FolderIntake(folder, self._ledger, wakeups=self._wakeups, gate=gate)
        self.by_label[folder.label] = intake
        task = self._tg.create_task(intake.run(), name=f"intake:{folder.label}")
        task.add_done_callback(lambda _task: intake.leave_gate())  # cancelled before it ran
        self.tasks[folder.label] = task

    def sync(self) -> None:
        """Intakes run for the folders this daemon may act on, and only for those."""
        acting = self._ownership.acting_on()
        for label in [label for label in self.tasks if label not in acting]:
            self.tasks.pop(label).cancel()
            self.by_label.pop(label, None)
            log.info("folder_standby", folder=label, reason="another daemon holds its lease")
        starting = [
            f for label, f in self._folders.items() if label in acting and label not in self.tasks
        ]
        gate = StartGate(len(starting))  # they begin watching together (startgate.py)
        for folder in starting:
            self.start(folder, gate)

    def cancel_all(self) -> None:
        for task in self.tasks.values():
            task.cancel()

    async def apply(self, folders: Sequence[FolderSettings]) -> None:
        """A reloaded folder list: changed and removed folders' intakes stop, new ones start."""
        wanted = {f.label: f for f in folders}
        changed = [label for label, f in self._folders.items() if wanted.get(label) != f]
        stopping = [self.tasks.pop(label) for label in changed if label in self.tasks]
        for task in stopping:
            task.cancel()
        if stopping:
            # Two watchers on one folder would race; let the old ones finish first.
            await asyncio.wait(stopping, timeout=INTAKE_STOP_S)
        removed: dict[Path, str] = {}
        for label in changed:
            self.by_label.pop(label, None)
            old = self._folders.pop(label)
            if label not in wanted:
                removed[old.path] = label
                log.info("folder_removed", folder=label, path=str(old.path))
            elif wanted[label].path != old.path:
                # The ledger knows files by (name, relative path): queued ones are looked
                # for under the new path and count as gone if they are not there.
                log.warning("folder_path_changed", folder=label, old=str(old.path))
        for label, folder in wanted.items():
            if label in self._folders:
                continue
            self._folders[label] = folder
            if self._ownership.may_act(label):
                self.start(folder)
            event = "folder_changed" if label in changed else "folder_added"
            log.info(event, folder=label, path=str(folder.path))
            if folder.path in removed:
                # The ledger knows files by folder name: a renamed folder starts afresh.
                log.warning(
                    "folder_renamed",
                    old=removed[folder.path],
                    new=label,
                    effect="files still in the folder are offered again under the new name",
                )
