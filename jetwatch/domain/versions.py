"""What a new version of a path says about the one sent before it; pure decisions.

Jet skips an object whose size and mtime match what is already at the destination, so a
new version with the size and mtime of the version sent before (``cp -p``, ``rsync -t``
of other content) is "delivered" while the destination keeps the old bytes: jetwatch
cannot change that rule, only say so. A version sent, then grown soon after (same inode,
bigger, newer) means the writer paused for longer than ``settle_seconds``: the partial
file went out first.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from jetwatch.domain.states import FileKey

# "Soon after": within this many settle periods of the first version settling, at least a minute.
WRITTEN_AGAIN_SETTLES = 20
WRITTEN_AGAIN_MIN_S = 60.0


class VersionNotice(StrEnum):
    """Why a new version deserves a warning; the metric label and the /status kind."""

    SAME_SIZE_MTIME = "same_size_mtime"  # Jet will skip it: the destination keeps old bytes
    WRITTEN_AGAIN = "written_again"  # grew again after it was sent: settle_seconds too short


@dataclass(frozen=True, slots=True)
class EarlierVersion:
    """A new version just recorded and the last version of the same path that was sent."""

    new: FileKey
    new_stable_at: float  # wall-clock epoch seconds, as the ledger records
    old: FileKey
    old_stable_at: float


def version_notice(version: EarlierVersion, settle_s: float) -> VersionNotice | None:
    """The warning a new version needs, or None."""
    new, old = version.new, version.old
    if (new.size, new.mtime_ns) == (old.size, old.mtime_ns):
        return VersionNotice.SAME_SIZE_MTIME
    grew = new.inode == old.inode and new.size > old.size and new.mtime_ns > old.mtime_ns
    window_s = max(WRITTEN_AGAIN_MIN_S, WRITTEN_AGAIN_SETTLES * settle_s)
    if grew and version.new_stable_at - version.old_stable_at <= window_s:
        return VersionNotice.WRITTEN_AGAIN
    return None


def notice_text(notice: VersionNotice) -> str:
    """What people read, with the way out."""
    if notice is VersionNotice.SAME_SIZE_MTIME:
        return (
            "a new version with the same size and mtime as the version sent before: Jet "
            "skips it and the destination keeps the old content; touch the file (a new "
            "mtime) to have it sent again"
        )
    return (
        "written again after delivery: settle_seconds may be too short for this writer "
        "(use ready_marker, or growing = true if the job accepts growing files)"
    )
