"""What every scenario shares: results, the run context, waiting, making files, inotify limits."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
QUEUED_EVENTS = Path("/proc/sys/fs/inotify/max_queued_events")
USER_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
CLIENT_ID, CLIENT_SECRET = "demo", "demo-secret"


# -- results ---------------------------------------------------------------------------------


@dataclass
class Row:
    """One figure: jetwatch's value, its floor and target, and the peers' values.

    The floor is the raw cost of the same work measured in the same run on the same files
    (``floor_label`` says which); the ratio value ÷ floor is what holds across machines.
    ``target`` is an absolute bound, ``target_ratio`` a bound on the ratio; ``ok`` needs both.
    """

    metric: str
    value: float | None
    unit: str = ""
    target: float | None = None
    better: str = "lower"  # or "higher"
    peers: dict[str, float | str | None] = field(default_factory=dict)
    note: str = ""
    floor: float | None = None
    floor_label: str = ""
    target_ratio: float | None = None

    @property
    def ratio(self) -> float | None:
        """value ÷ floor; None without a floor, or when either is ≤ 0 (e.g. a burst all
        POSTed before settle + linger ran out: nothing of its own to compare)."""
        if self.value is None or self.floor is None or self.value <= 0 or self.floor <= 0:
            return None
        return self.value / self.floor

    @property
    def ok(self) -> bool | None:
        checks: list[bool] = []
        if self.target is not None and self.value is not None:
            lower = self.value <= self.target
            checks.append(lower if self.better == "lower" else self.value >= self.target)
        if self.target_ratio is not None and self.ratio is not None:
            checks.append(self.ratio <= self.target_ratio)
        if not checks:
            return None
        return all(checks)


@dataclass
class Result:
    """What one scenario measured; ``status`` is ok, TIMEOUT or an error text."""

    scenario: str
    params: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status: str = "ok"
    seconds: float = 0.0
    tables: list[str] = field(default_factory=list)  # extra markdown (the scaling table)

    def add(self, metric: str, value: float | None, unit: str = "", **kw: Any) -> Row:
        if kw.get("floor") is not None:
            kw["floor"] = round(float(kw["floor"]), 6)
        row = Row(metric, None if value is None else round(float(value), 6), unit, **kw)
        self.rows.append(row)
        return row

    def timeout(self, what: str) -> None:
        self.status = "TIMEOUT"
        self.notes.append(f"TIMEOUT: {what}")


@dataclass
class Context:
    """Run-wide settings and a cache for big trees several scenarios reuse."""

    quick: bool
    work: Path
    out: Path
    profile: bool = False
    cache_dir: Path | None = None  # keeps the big tree between runs (--cache)
    peers: bool = True
    save_logs: bool = False  # write each daemon's JSON log to out/logs/ (--logs)

    def log_path(self, name: str) -> Path | None:
        if not self.save_logs:
            return None
        (self.out / "logs").mkdir(parents=True, exist_ok=True)
        return self.out / "logs" / f"{name}.jsonl"

    cache: dict[str, Any] = field(default_factory=dict)

    def size(self, quick: int, full: int) -> int:
        return quick if self.quick else full


def load_avg() -> list[float]:
    """The 1, 5 and 15 minute load averages: figures measured under load say so."""
    return [round(x, 2) for x in os.getloadavg()]


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


async def wait_until(predicate: Callable[[], bool], timeout_s: float, step_s: float = 0.02) -> bool:
    """Poll ``predicate`` until true or ``timeout_s`` passed; never raises on timeout."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(step_s)
    return True


# -- files -----------------------------------------------------------------------------------


def burst_paths(n_files: int, n_dirs: int, prefix: str = "") -> list[str]:
    """``n_files`` relative paths spread evenly over ``n_dirs`` directories."""
    per_dir = math.ceil(n_files / n_dirs)
    return [f"{prefix}d{i // per_dir:04d}/f{i:07d}.dat" for i in range(n_files)]


def write_files(root: Path, relpaths: Iterable[str], payload: bytes = b"") -> float:
    """Create the files (and their directories) as fast as Python can; returns the last close."""
    base = os.fspath(root)
    made: set[str] = set()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    last = time.time()
    for rel in relpaths:
        head = rel.rpartition("/")[0]
        if head and head not in made:
            os.makedirs(os.path.join(base, head), exist_ok=True)
            made.add(head)
        fd = os.open(os.path.join(base, rel), flags, 0o644)
        if payload:
            os.write(fd, payload)
        os.close(fd)
        last = time.time()
    return last


def stat_keys(root: Path) -> Iterator[tuple[str, int, int, int]]:
    """(relpath, size, mtime_ns, inode) of every regular file under ``root``."""
    stack = [(os.fspath(root), "")]
    while stack:
        path, rel = stack.pop()
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, rel + entry.name + "/"))
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    yield rel + entry.name, st.st_size, st.st_mtime_ns, st.st_ino


@contextlib.contextmanager
def inotify_queue_limit(events: int) -> Iterator[int | None]:
    """Lower fs.inotify.max_queued_events (needs root); yields the old value, None if refused.

    The kernel reads the limit when an inotify instance is created, so callers restore it
    as soon as their watchers exist: other processes on the host see it meanwhile.
    """
    try:
        old = int(QUEUED_EVENTS.read_text().strip())
        QUEUED_EVENTS.write_text(str(events))
    except (OSError, ValueError):
        yield None
        return
    try:
        yield old
    finally:
        restore_queue_limit(old)


def restore_queue_limit(old: int) -> None:
    with contextlib.suppress(OSError):
        if QUEUED_EVENTS.read_text().strip() != str(old):
            QUEUED_EVENTS.write_text(str(old))


def raise_user_instances(at_least: int) -> int | None:
    """Raise fs.inotify.max_user_instances to ``at_least`` (needs root) for a daemon with
    more folders than the default 128 allows (deploy/edge.md raises it too), so that it
    and the other programs of this user keep getting inotify instances. Returns the old
    value to restore, or None when nothing was changed (high enough, or refused)."""
    try:
        old = int(USER_INSTANCES.read_text().strip())
        if old >= at_least:
            return None
        USER_INSTANCES.write_text(str(at_least))
    except (OSError, ValueError):
        return None
    return old


def restore_user_instances(old: int) -> None:
    with contextlib.suppress(OSError):
        USER_INSTANCES.write_text(str(old))
