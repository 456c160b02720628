"""What a folder's watcher tells its intake: one typed event per kind of news, on the loop."""

from __future__ import annotations

from dataclasses import dataclass

from jetwatch.domain.settle import FileStat
from jetwatch.intake.mounts import WatchState
from jetwatch.intake.scan import ScanReport


@dataclass(frozen=True, slots=True)
class Hints:
    """Relative paths of files *or directories* added, changed, deleted or moved; not stat-ed."""

    paths: set[str]


@dataclass(frozen=True, slots=True)
class ScanChunk:
    """Files a scan found (those the scan filter kept), stat-ed in the scan's thread."""

    files: list[FileStat]


@dataclass(frozen=True, slots=True)
class ScanDone:
    """A scan (full, of a subdirectory, or a pass over changed directories) finished."""

    report: ScanReport


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The folder's watch mode or its reason changed (events, scan, down)."""

    state: WatchState


@dataclass(frozen=True, slots=True)
class BadName:
    """A name that cannot be delivered (not UTF-8, a newline, ...): skipped and reported."""

    relpath: str
    problem: str


@dataclass(frozen=True, slots=True)
class NotRegular:
    """An entry that is no regular file (symlink, FIFO, socket, device): skipped, reported."""

    relpath: str
    kind: str


WatchEvent = Hints | ScanChunk | ScanDone | StateChanged | BadName | NotRegular
