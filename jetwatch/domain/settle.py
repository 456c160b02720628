"""Pure decision of when a file is complete, from its stat observations and a given ``now``."""

from __future__ import annotations

from typing import NamedTuple


class FileStat(NamedTuple):
    """One stat result of a regular file; ``relpath`` is relative to the folder, "/"-separated.

    A named tuple, not a frozen dataclass: a scan makes one per file (a million at a
    restart) and a frozen dataclass's ``__init__`` costs twice as much.
    """

    relpath: str
    size: int
    mtime_ns: int
    inode: int
    marked: bool = False  # its ready marker was there when it was stat-ed

    @property
    def signature(self) -> tuple[int, int, int]:
        """What must stay unchanged for the file to count as settled (the ledger's version key)."""
        return (self.size, self.mtime_ns, self.inode)


def file_marker(relpath: str, ready_marker: str) -> str:
    """Path of the marker that says ``relpath`` is complete (``clip.mov`` → ``clip.mov.ready``)."""
    return relpath + ready_marker


def folder_marker(reldir: str, ready_marker: str) -> str:
    """Path of the marker that says the drop in ``reldir`` is complete (``reldir/.ready``)."""
    return f"{reldir}/{ready_marker}" if reldir else ready_marker


def marker_paths(relpath: str, ready_marker: str) -> tuple[str, str]:
    """The two markers either of which makes ``relpath`` ready: its own and its folder's."""
    reldir = relpath.rpartition("/")[0]
    return file_marker(relpath, ready_marker), folder_marker(reldir, ready_marker)


# A pending file: when its signature was first seen, and that signature (since, size,
# mtime_ns, inode). A plain tuple of numbers, which the garbage collector stops tracking: a
# burst keeps 100,000 pending for seconds, and as objects they made every full collection
# walk them all (50,000: 19 ms a collection; as tuples 1 ms).
_Pending = tuple[float, int, int, int]
_SINCE = 0


def _pending(stat: FileStat, since: float) -> _Pending:
    return (since, stat.size, stat.mtime_ns, stat.inode)


def _unchanged(entry: _Pending, stat: FileStat) -> bool:
    return entry[1] == stat.size and entry[2] == stat.mtime_ns and entry[3] == stat.inode


def _same(a: FileStat, b: FileStat) -> bool:
    # Field by field: avoids building two signature tuples per observation.
    return a.size == b.size and a.mtime_ns == b.mtime_ns and a.inode == b.inode


class Settler:
    """Track pending files until they are complete; no I/O, every time comes in as ``now``.

    A file is ready when its signature (size, mtime_ns, inode) was first observed at t0 and
    observed again, unchanged, at t1 >= t0 + settle_s: two stats, never fewer, and never by
    the clock alone (a file nobody re-stats never becomes ready). Any change of the
    signature, including a new inode from replace-by-rename, restarts the wait. A 0-byte
    file follows the same rule: empty files are often placeholders about to be written, so
    they get no early pass (and no special exclusion either: a file that stays empty for
    settle_s is sent as it is).

    ``growing=True`` makes a file ready at first sight (jobs that accept growing objects).
    ``marker=True`` (or ``stat.marked``) means the producer wrote the file's ready marker,
    which it does only after the file is complete: ready at once. ``require_marker=True``
    (folders configured with ``ready_marker``) turns off the stability rule, so only a
    marker makes a file ready.

    Pending files are kept in the order their current signature was first seen, which
    makes ``next_due``, ``due`` and ``oldest_since`` cheap with 100,000 pending files.
    That order assumes ``now`` does not go backwards; if a wall clock steps back, those
    answers can be late by the size of the step, and readiness is still never early.
    """

    __slots__ = ("_pending", "_ready", "growing", "require_marker", "settle_s")

    def __init__(
        self, settle_s: float, *, growing: bool = False, require_marker: bool = False
    ) -> None:
        if settle_s < 0:
            raise ValueError(f"settle_s must be >= 0, got {settle_s}")
        self.settle_s = settle_s
        self.growing = growing
        self.require_marker = require_marker
        self._pending: dict[str, _Pending] = {}
        self._ready: dict[str, FileStat] = {}

    def observe(self, stat: FileStat, now: float, *, marker: bool = False) -> None:
        """Record one stat result of ``stat.relpath`` taken at ``now``."""
        path = stat.relpath
        if self.growing or marker or stat.marked:
            self._pending.pop(path, None)
            self._ready[path] = stat
            return
        done = self._ready.get(path)
        if done is not None:
            if _same(done, stat):
                return
            # Changed after it was found complete but before anyone took it: start over.
            del self._ready[path]
        entry = self._pending.get(path)
        if entry is None or not _unchanged(entry, stat):
            # Re-insert so the dict stays ordered by ``since``.
            self._pending.pop(path, None)
            self._pending[path] = _pending(stat, now)
            return
        if not self.require_marker and now >= entry[_SINCE] + self.settle_s:
            del self._pending[path]
            self._ready[path] = stat

    def vanished(self, relpath: str) -> bool:
        """Forget a file that no longer exists; True if it was tracked."""
        gone = self._pending.pop(relpath, None) is not None
        return self._ready.pop(relpath, None) is not None or gone

    def ready(self, now: float) -> list[FileStat]:
        """Return and forget the files found complete by their observations.

        ``now`` is accepted for a uniform interface; readiness was decided when the
        confirming observation came in, never by the clock alone.
        """
        del now
        if not self._ready:
            return []
        done = list(self._ready.values())
        self._ready.clear()
        return done

    def __contains__(self, relpath: object) -> bool:
        return relpath in self._pending or relpath in self._ready

    def __len__(self) -> int:
        return len(self._pending) + len(self._ready)

    def due(self, now: float) -> list[str]:
        """Pending paths whose settle time has passed: a re-stat now can make them ready."""
        due: list[str] = []
        for path, entry in self._pending.items():
            if entry[_SINCE] + self.settle_s > now:
                break
            due.append(path)
        return due

    def next_due(self, now: float) -> float | None:
        """Earliest time a pending file could become ready (never before ``now``), or None.

        With ``require_marker`` this is still since + settle_s: the cadence for looking
        for markers again. Files already ready and not yet taken make it ``now``.
        """
        if self._ready:
            return now
        for entry in self._pending.values():
            return max(now, entry[_SINCE] + self.settle_s)
        return None

    def oldest_since(self) -> float | None:
        """When the oldest pending file's current signature was first seen, or None."""
        for entry in self._pending.values():
            return entry[_SINCE]
        return None
