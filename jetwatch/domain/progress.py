"""Delivery progress and throughput, pure: what each poll reported, its rate, ETA, history.

The tracker feeds a :class:`ProgressBoard` one :class:`~jetwatch.domain.target.Progress`
per poll and one call per finished submission; ``/status``, the console, ``jetwatch
status`` and the progress gauges read it. Everything comes from the back end's own counts
(files and bytes transferred or skipped), never from guesses about wire speed: a rate is
the change of those counts over the last ``RATE_WINDOW_S`` seconds of polls, on the
monotonic clock; the per-minute history is dated by the wall clock (people read it).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from jetwatch.domain.target import Progress

RATE_WINDOW_S = 60.0  # polls older than this do not count towards the rate
HISTORY_MINUTES = 60  # the per-minute history of each folder covers the last hour
_MAX_SAMPLES = 64


@dataclass(frozen=True, slots=True)
class DeliveryProgress:
    """One submission in flight as its back end last reported it."""

    batch_id: int
    folder: str
    handle: str
    state: str
    files: int
    files_done: int  # transferred + skipped
    files_failed: int
    bytes_total: int
    bytes_done: int  # as reported (0 when the back end reports no bytes)
    bytes_per_s: float | None  # None until two polls differ
    files_per_s: float | None
    eta_s: float | None  # None while nothing moves
    updated_at: float  # wall time of the last poll

    @property
    def fraction(self) -> float:
        """Done, 0..1: by bytes when the back end reports bytes, else by files."""
        by_files = self.files_done / self.files if self.files else 0.0
        by_bytes = self.bytes_done / self.bytes_total if self.bytes_total else 0.0
        return min(1.0, max(by_files, by_bytes))


@dataclass(slots=True)
class _Track:
    folder: str
    handle: str
    files: int
    bytes_total: int
    samples: deque[tuple[float, int, int]] = field(
        default_factory=lambda: deque(maxlen=_MAX_SAMPLES)
    )
    latest: DeliveryProgress | None = None


@dataclass(frozen=True, slots=True)
class MinuteCounts:
    """Files and bytes delivered in each of the last minutes, oldest first."""

    first_minute_at: float  # wall time the first bucket starts
    files: tuple[int, ...]
    bytes: tuple[int, ...]


def _rate(samples: deque[tuple[float, int, int]]) -> tuple[float | None, float | None]:
    """(bytes/s, files/s) between the oldest and newest sample; None when they do not differ."""
    if len(samples) < 2:
        return None, None
    t0, bytes0, files0 = samples[0]
    t1, bytes1, files1 = samples[-1]
    elapsed_s = t1 - t0
    if elapsed_s <= 0 or (bytes1 == bytes0 and files1 == files0):
        return None, None
    return max(0, bytes1 - bytes0) / elapsed_s, max(0, files1 - files0) / elapsed_s


def _eta(
    track: _Track, bytes_done: int, files_done: int, rates: tuple[float | None, float | None]
) -> float | None:
    bytes_per_s, files_per_s = rates
    if bytes_done and track.bytes_total and bytes_per_s:
        return max(0.0, track.bytes_total - bytes_done) / bytes_per_s
    if files_per_s:
        return max(0, track.files - files_done) / files_per_s
    return None


class ProgressBoard:
    """Submissions in flight (latest progress, rate, ETA) and each folder's last hour."""

    def __init__(self) -> None:
        self._tracks: dict[int, _Track] = {}
        # folder -> deque of [minute number, files, bytes], newest last
        self._history: dict[str, deque[list[int]]] = {}

    def observe(
        self,
        batch_id: int,
        *,
        folder: str,
        handle: str,
        files: int,
        bytes_total: int,
        progress: Progress,
        now: float,
        wall: float,
    ) -> DeliveryProgress:
        """Record one poll (``now`` monotonic, ``wall`` epoch); returns what it shows now."""
        track = self._tracks.get(batch_id)
        if track is None or track.handle != handle:
            track = self._tracks[batch_id] = _Track(folder, handle, files, bytes_total)
        files_done = progress.transferred + progress.skipped
        track.samples.append((now, progress.bytes_done, files_done))
        while len(track.samples) > 2 and now - track.samples[0][0] > RATE_WINDOW_S:
            track.samples.popleft()
        rates = _rate(track.samples)
        track.latest = DeliveryProgress(
            batch_id=batch_id,
            folder=folder,
            handle=handle,
            state=progress.state,
            files=files,
            files_done=files_done,
            files_failed=progress.failed_count,
            bytes_total=bytes_total,
            bytes_done=progress.bytes_done,
            bytes_per_s=rates[0],
            files_per_s=rates[1],
            eta_s=_eta(track, progress.bytes_done, files_done, rates),
            updated_at=wall,
        )
        return track.latest

    def finish(self, batch_id: int, *, folder: str, files: int, size: int, wall: float) -> None:
        """A submission succeeded: it leaves the board and counts in its folder's minute."""
        self._tracks.pop(batch_id, None)
        minute = int(wall // 60)
        history = self._history.setdefault(folder, deque(maxlen=HISTORY_MINUTES))
        if history and history[-1][0] == minute:
            history[-1][1] += files
            history[-1][2] += size
        else:
            history.append([minute, files, size])

    def forget(self, batch_id: int) -> None:
        """A submission failed or is no longer followed."""
        self._tracks.pop(batch_id, None)

    def retain(self, batch_ids: set[int]) -> None:
        """Drop every submission not in ``batch_ids`` (the ledger's SUBMITTED batches)."""
        for gone in self._tracks.keys() - batch_ids:
            del self._tracks[gone]

    def in_flight(self) -> dict[int, DeliveryProgress]:
        """batch id → latest progress, for submissions polled at least once."""
        return {bid: t.latest for bid, t in self._tracks.items() if t.latest is not None}

    def minutes(self, folder: str, wall: float) -> MinuteCounts:
        """The folder's files and bytes delivered per minute over the last hour."""
        current = int(wall // 60)
        first = current - HISTORY_MINUTES + 1
        files = [0] * HISTORY_MINUTES
        size = [0] * HISTORY_MINUTES
        for minute, n, b in self._history.get(folder, ()):
            if first <= minute <= current:
                files[minute - first] += n
                size[minute - first] += b
        return MinuteCounts(float(first * 60), tuple(files), tuple(size))

    def folders(self) -> set[str]:
        """Folders with a submission in flight or a delivery in the history."""
        return {t.folder for t in self._tracks.values()} | set(self._history)
