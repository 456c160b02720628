"""One jetwatch burst, measured: used by ``burst``, ``scaling``, ``many_folders`` (and a
ledger-backend variant such as ``postgres``).

N files are written beforehand beside the watched folder and renamed into it as fast as
possible (renames allocate no inode, see the README's *Disk*). Measured: when the last
file's first POST arrived, POSTs, missed and twice-sent files, daemon CPU and RSS, when
every file was DONE; optionally the ops endpoints' answer times from a separate process
(``_prober``), idle first, then during the burst; and the floor of the same work.

Another ledger backend plugs in through ``LedgerSpec``: the ``[ledger]`` keys the daemon
gets and how to count DONE files (see ``burst.measure``).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.scenarios import _prober
from bench.scenarios._daemon import ChildProcess, DaemonProcess, event_time, write_config
from bench.scenarios._emulator import BenchEmulator
from bench.scenarios._floors import burst_floor
from bench.scenarios._harness import (
    Context,
    burst_paths,
    inotify_queue_limit,
    say,
    wait_until,
    write_files,
)

DIRS = 100
MAX_FILES = 1000
SETTLE_S = 1.0
LINGER_S = 0.5
PAYLOAD = b"x" * 100
IDLE_PROBE_S = 3.0  # the endpoints' answer times with the daemon idle: their floor


@dataclass(frozen=True)
class LedgerSpec:
    """A ledger backend for the daemon: its ``[ledger]`` keys and a count of DONE files."""

    label: str
    keys: dict[str, object]
    done_count: Callable[[], int]


def sqlite_ledger(path: Path) -> LedgerSpec:
    def done() -> int:
        if not path.exists():
            return 0
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT count(*) FROM files WHERE state = 'DONE'").fetchone()
            return int(row[0])
        finally:
            conn.close()

    return LedgerSpec("sqlite", {"path": path}, done)


@dataclass
class Outcome:
    """One tool's run of a burst; times are seconds after the last file was closed."""

    files: int
    reported: int = 0  # distinct files POSTed (or seen, for pure watchers)
    posts: int = 0
    objects: int = 0  # objects in all POSTs (duplicates counted)
    last_s: float | None = None
    write_s: float = 0.0
    cpu_s: float | None = None
    done_s: float | None = None  # every file DONE (post-action applied), after the last close
    cpu_done_s: float | None = None
    closed_at: float = 0.0  # epoch seconds of the last close
    started_at: float = 0.0  # epoch seconds of the first rename
    cpu_at_start: float = 0.0
    peak_rss_mb: float | None = None
    timed_out: bool = False
    queue_limited: bool = False
    witness_seen: int | None = None  # raw watchfiles under the same inotify limit
    timeline: dict[str, float] = field(default_factory=dict)  # daemon events vs last close
    staged: list[str] = field(default_factory=list, repr=False)
    requests: dict[str, int] = field(default_factory=dict)  # API calls the emulator answered
    probe_idle: dict[str, dict[str, Any]] = field(default_factory=dict)
    probe_load: dict[str, dict[str, Any]] = field(default_factory=dict)
    floor: dict[str, Any] | None = None  # _floors.burst_floor of the same files

    @property
    def missed(self) -> int:
        return self.files - self.reported

    @property
    def beyond_s(self) -> float | None:
        """All POSTed, past last close + settle + linger: jetwatch's own time."""
        return None if self.last_s is None else self.last_s - SETTLE_S - LINGER_S


async def stage(staging: Path, n_files: int, prefix: str = "") -> list[str]:
    """Write the burst's files into ``staging`` (not watched); returns their paths."""
    paths = burst_paths(n_files, DIRS, prefix)
    await asyncio.to_thread(write_files, staging, paths, PAYLOAD)
    return paths


def move_files(staging: Path, folder: Path, paths: list[str]) -> float:
    """Rename the staged files into ``folder``; returns when the last one arrived."""
    source, target = os.fspath(staging), os.fspath(folder)
    made: set[str] = set()
    for rel in paths:
        head = rel.rpartition("/")[0]
        if head not in made:
            os.makedirs(os.path.join(target, head), exist_ok=True)
            made.add(head)
        os.rename(os.path.join(source, rel), os.path.join(target, rel))
    return time.time()


async def write_burst(staging: Path, folder: Path, paths: list[str]) -> tuple[float, float]:
    """The burst: staged files renamed into the folder as fast as Python can.

    Creating files costs whatever the disk's inode allocator costs that minute (on ext4,
    block groups with many recently deleted inodes are slow), which would turn a burst into
    a trickle; renames are cheap and are how rsync and most copy tools finish a file.
    """
    started = time.time()
    last = await asyncio.to_thread(move_files, staging, folder, paths)
    return started, last


class Probe:
    """The ``_prober`` child, asking the daemon's endpoints from its own process."""

    def __init__(self, url: str) -> None:
        cmd = [sys.executable, "-m", "bench.scenarios._prober", url]
        self.child = ChildProcess(cmd)

    async def ready(self) -> bool:
        return await wait_until(lambda: self.child.has("ready"), 15)

    def summary(self, t0: float, t1: float) -> dict[str, dict[str, Any]]:
        return _prober.summarize(_prober.window(list(self.child.lines), t0, t1))

    async def stop(self) -> None:
        await self.child.stop()


async def jetwatch_burst(
    ctx: Context,
    emu: BenchEmulator,
    n_files: int,
    tag: str,
    *,
    queue: int | None = None,
    ledger: Callable[[Path], LedgerSpec] | None = None,
    probe: bool = False,
    floor: bool = True,
) -> Outcome:
    """A fresh daemon on a fresh folder and ledger, one burst of ``n_files``.

    ``queue`` lowers fs.inotify.max_queued_events while the daemon's watcher (and a raw
    watchfiles witness) start; ``ledger`` makes the ledger backend from the path a SQLite
    ledger would have (default: that SQLite ledger); ``probe`` times the ops endpoints;
    ``floor`` measures the floor of the same files once the daemon has stopped.
    """
    base = ctx.work / f"burst-{tag}"
    folder = base / "in"
    folder.mkdir(parents=True)
    spec = (ledger or sqlite_ledger)(base / "ledger.db")
    job_name = f"Burst {tag}"
    job = await emu.job(folder, job_name)
    config = write_config(
        base / "jetwatch.toml",
        base_url=emu.url,
        folder=folder,
        ledger=base / "ledger.db",
        ledger_keys=spec.keys,
        job=job_name,
        settle_seconds=SETTLE_S,
        batch_linger_seconds=LINGER_S,
        max_files=MAX_FILES,
    )
    profile = ctx.out / f"profile-burst-{tag}" if ctx.profile else None
    daemon = DaemonProcess(config, profile_out=profile, log_path=ctx.log_path(f"burst-{tag}"))
    outcome = Outcome(n_files, staged=await stage(base / "staging", n_files))
    witness: ChildProcess | None = None
    prober: Probe | None = None
    try:
        if queue is None:
            daemon.start()
            ready = await daemon.wait_event("ready", 60)
        else:
            # Raw watchfiles, started under the same limit, shows that events were lost.
            with inotify_queue_limit(queue) as old:
                ctx.cache["queue_limit_restore"] = old
                daemon.start()
                watcher = ["-m", "bench.scenarios._peers", "watchfiles", str(folder)]
                witness = ChildProcess([sys.executable, *watcher, "--per-file"])
                ready = await daemon.wait_event("ready", 60)
                await wait_until(lambda: witness is not None and witness.has("ready"), 15)
            outcome.queue_limited = old is not None
        if ready is None:
            raise RuntimeError("daemon not ready in 60 s: " + daemon.tail())
        url = daemon.ops_url()
        if probe and url is not None:
            prober = Probe(url)
            await prober.ready()
            idle_from = time.time()
            await asyncio.sleep(IDLE_PROBE_S)
            outcome.probe_idle = prober.summary(idle_from, time.time())
        await run_burst(emu, job, (base / "staging", folder, ""), daemon, outcome)
        await wait_done(spec, daemon, outcome)
        if prober is not None:
            outcome.probe_load = prober.summary(outcome.started_at, time.time())
    finally:
        if prober is not None:
            await prober.stop()
        await daemon.stop()
        if witness is not None:
            await witness.stop()
            outcome.witness_seen = len(peer_seen(witness))
    if floor:
        say(f"burst {tag}: floor of the same {n_files:,} files")
        outcome.floor = await burst_floor(folder, base / "floor.db")
    return outcome


async def run_burst(
    emu: BenchEmulator,
    job: str,
    where: tuple[Path, Path, str],
    daemon: DaemonProcess,
    outcome: Outcome,
) -> None:
    """Move the staged files in and wait until every one was POSTed.

    ``where`` is (staging dir, watched folder, the folder's path below the profile root:
    "" when the folder is the root, "/m000" for a folder of a shared root).
    """
    staging, folder, below_root = where
    paths = outcome.staged
    expected = {f"{below_root}/{p}" for p in paths}
    since = len(emu.recorder.posts)
    mark = len(daemon.events)
    calls_before = dict(emu.server.stats.by_route)
    cpu_before = outcome.cpu_at_start = daemon.cpu_s()
    started, last_close = await write_burst(staging, folder, paths)
    outcome.write_s = last_close - started
    outcome.closed_at, outcome.started_at = last_close, started
    timeout_s = 60 + outcome.files / 1000

    def all_posted() -> bool:
        posts = emu.recorder.of(job, since)
        return sum(len(p.paths) for p in posts) >= len(expected) or not daemon.alive()

    outcome.timed_out = not await wait_until(all_posted, timeout_s, 0.05)
    await asyncio.sleep(0.5)  # anything sent twice arrives now
    outcome.cpu_s = daemon.cpu_s() - cpu_before
    outcome.peak_rss_mb = daemon.memory_mb()[1]
    posts = emu.recorder.of(job, since)
    first = emu.recorder.first_post_of(job, expected, since)
    outcome.reported = len(first)
    outcome.posts = len(posts)
    outcome.objects = sum(len(p.paths) for p in posts)
    outcome.last_s = (max(first.values()) - last_close) if first else None
    outcome.timeline = timeline(daemon, mark, last_close)
    outcome.requests = {
        route: n - calls_before.get(route, 0)
        for route, n in emu.server.stats.by_route.items()
        if n > calls_before.get(route, 0)
    }


async def wait_done(spec: LedgerSpec, daemon: DaemonProcess, outcome: Outcome) -> None:
    """Wait until every file's post-action ran: the whole pipeline's time and CPU."""
    # Counting DONE rows costs the bench (and the disk) more as N grows: ask less often.
    step_s = max(0.2, outcome.files / 1_000_000)
    done = await wait_until(
        lambda: not daemon.alive() or spec.done_count() >= outcome.files,
        120 + outcome.files / 1000,
        step_s,
    )
    if done and daemon.alive():
        outcome.done_s = time.time() - outcome.closed_at
        outcome.cpu_done_s = daemon.cpu_s() - outcome.cpu_at_start


def timeline(daemon: DaemonProcess, mark: int, last_close: float) -> dict[str, float]:
    """When the daemon logged the steps of the burst, in seconds after the last close."""
    marks: dict[str, float] = {}
    picks = (
        ("burst noticed", "watch_burst", 0),
        ("first full rescan done", "scan_finished", 0),
        ("first batch formed", "batch_formed", 0),
        ("last batch formed", "batch_formed", -1),
        ("first delivery_submitted", "delivery_submitted", 0),
        ("last delivery_submitted", "delivery_submitted", -1),
    )
    for label, name, index in picks:
        events = daemon.all(name, since=mark)
        if name == "scan_finished":
            events = [e for e in events if not e.get("subdir")]
        if events:
            marks[label] = round(event_time(events[index]) - last_close, 2)
    return marks


def peer_seen(peer: ChildProcess) -> dict[str, float]:
    return {str(x["p"]): float(x["t"]) for x in peer.lines if x.get("kind") == "seen"}
