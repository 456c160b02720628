"""Burst: N small files over 100 directories at once → all POSTed, in how many POSTs, none lost.

The files are written beforehand beside the watched folder and renamed into it as fast as
possible (see ``write_burst``). jetwatch runs alone; then the peers (raw watchfiles,
inotifywait, the naive uploader) watch one folder together and get the identical burst.
One extra jetwatch run lowers fs.inotify.max_queued_events while its watcher starts,
forcing a queue overflow: every file must still arrive (the rescan after a burst finds
them); raw watchfiles started under the same limit shows what events alone would lose.
"""

from __future__ import annotations

import asyncio
import math
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.scenarios._daemon import ChildProcess, DaemonProcess, event_time, write_config
from bench.scenarios._emulator import BenchEmulator
from bench.scenarios._harness import (
    Context,
    Result,
    burst_paths,
    inotify_queue_limit,
    say,
    wait_until,
    write_files,
)
from bench.scenarios._peers import inotifywait_available

NAME = "burst"
DIRS = 100
MAX_FILES = 1000
SETTLE_S = 1.0
PAYLOAD = b"x" * 100
OVERFLOW_QUEUE = 256
STALE_S = 1.5  # peers that reported nothing new for this long are done


@dataclass
class Outcome:
    """One tool's run of the burst; times are seconds after the last file was closed."""

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
    cpu_at_start: float = 0.0
    peak_rss_mb: float | None = None
    timed_out: bool = False
    queue_limited: bool = False
    witness_seen: int | None = None  # raw watchfiles under the same inotify limit
    timeline: dict[str, float] = field(default_factory=dict)  # daemon events vs last close
    staged: list[str] = field(default_factory=list, repr=False)
    requests: dict[str, int] = field(default_factory=dict)  # API calls the emulator answered

    @property
    def missed(self) -> int:
        return self.files - self.reported


async def stage(folder: Path, n_files: int) -> list[str]:
    """Write the burst's files beside ``folder`` (not watched yet); returns their paths."""
    paths = burst_paths(n_files, DIRS)
    await asyncio.to_thread(write_files, folder.parent / "staging", paths, PAYLOAD)
    return paths


def move_files(folder: Path, paths: list[str]) -> float:
    """Rename the staged files into ``folder``; returns when the last one arrived."""
    source, target = os.fspath(folder.parent / "staging"), os.fspath(folder)
    made: set[str] = set()
    for rel in paths:
        head = rel.rpartition("/")[0]
        if head not in made:
            os.makedirs(os.path.join(target, head), exist_ok=True)
            made.add(head)
        os.rename(os.path.join(source, rel), os.path.join(target, rel))
    return time.time()


async def write_burst(folder: Path, paths: list[str]) -> tuple[float, float]:
    """The burst: staged files renamed into the folder as fast as Python can.

    Creating files costs whatever the disk's inode allocator costs that minute (on ext4,
    block groups with many recently deleted inodes are slow), which would turn a burst into
    a trickle; renames are cheap and are how rsync and most copy tools finish a file.
    """
    started = time.time()
    last = await asyncio.to_thread(move_files, folder, paths)
    return started, last


async def jetwatch_burst(
    ctx: Context, emu: BenchEmulator, n_files: int, tag: str, queue: int | None = None
) -> Outcome:
    base = ctx.work / f"burst-{tag}"
    folder = base / "in"
    folder.mkdir(parents=True)
    job_name = f"Burst {tag}"
    job = await emu.job(folder, job_name)
    config = write_config(
        base / "jetwatch.toml",
        base_url=emu.url,
        folder=folder,
        ledger=base / "ledger.db",
        job=job_name,
        settle_seconds=SETTLE_S,
        max_files=MAX_FILES,
    )
    profile = ctx.out / f"profile-burst-{tag}" if ctx.profile else None
    daemon = DaemonProcess(config, profile_out=profile, log_path=ctx.log_path(f"burst-{tag}"))
    outcome = Outcome(n_files, staged=await stage(folder, n_files))
    witness: ChildProcess | None = None
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
        await run_burst(emu, job, folder, daemon, outcome)
        if queue is None:
            await wait_done(base / "ledger.db", daemon, outcome)
    finally:
        await daemon.stop()
        if witness is not None:
            await witness.stop()
            outcome.witness_seen = len(peer_seen(witness))
    return outcome


async def run_burst(
    emu: BenchEmulator, job: str, folder: Path, daemon: DaemonProcess, outcome: Outcome
) -> None:
    paths = outcome.staged
    expected = {"/" + p for p in paths}
    since = len(emu.recorder.posts)
    mark = len(daemon.events)
    calls_before = dict(emu.server.stats.by_route)
    cpu_before = outcome.cpu_at_start = daemon.cpu_s()
    started, last_close = await write_burst(folder, paths)
    outcome.write_s = last_close - started
    outcome.closed_at = last_close
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


def done_files(ledger: Path) -> int:
    """Files DONE in the daemon's ledger, read through a read-only connection."""
    conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM files WHERE state = 'DONE'").fetchone()[0])
    finally:
        conn.close()


async def wait_done(ledger: Path, daemon: DaemonProcess, outcome: Outcome) -> None:
    """Wait until every file's post-action ran: the whole pipeline's time and CPU."""
    done = await wait_until(
        lambda: not daemon.alive() or done_files(ledger) >= outcome.files, 120, 0.2
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


def peer_commands(url: str, job: str, folder: Path) -> dict[str, list[str]]:
    watcher = [sys.executable, "-m", "bench.scenarios._peers"]
    commands = {
        "watchfiles": [*watcher, "watchfiles", str(folder), "--per-file"],
        "naive": [sys.executable, "-m", "bench.naive_uploader", url, job, str(folder)],
    }
    if inotifywait_available():
        commands["inotifywait"] = [*watcher, "inotifywait", str(folder), "--per-file"]
    return commands


async def peers_burst(ctx: Context, emu: BenchEmulator, n_files: int) -> dict[str, Outcome]:
    """All peers watch one folder and see the same burst (they are light, except naive)."""
    folder = ctx.work / "burst-peers" / "in"
    folder.mkdir(parents=True)
    job = await emu.job(folder, "Naive Burst")
    paths = await stage(folder, n_files)
    since = len(emu.recorder.posts)
    peers = {k: ChildProcess(v) for k, v in peer_commands(emu.url, job, folder).items()}

    def naive_firsts() -> dict[str, float]:
        found: dict[str, float] = {}
        for post in emu.recorder.of(job, since):
            for path in post.paths:
                found.setdefault(path.lstrip("/"), post.t)
        return found

    def progress() -> tuple[int, ...]:
        return (len(emu.recorder.posts) - since, *(len(p.lines) for p in peers.values()))

    try:
        if not await wait_until(lambda: all(p.has("ready") for p in peers.values()), 15):
            raise RuntimeError("peers not ready in 15 s")
        started, last_close = await write_burst(folder, paths)
        timed_out = not await wait_quiet(progress, 30 + n_files / 500)
    finally:
        for peer in peers.values():
            await peer.stop()
    outcomes: dict[str, Outcome] = {}
    for name, peer in peers.items():
        firsts = naive_firsts() if name == "naive" else peer_seen(peer)
        outcome = Outcome(n_files, write_s=last_close - started, timed_out=timed_out)
        outcome.reported = len(firsts)
        outcome.last_s = (max(firsts.values()) - last_close) if firsts else None
        outcomes[name] = outcome
    posts = emu.recorder.of(job, since)
    outcomes["naive"].posts = len(posts)
    outcomes["naive"].objects = sum(len(p.paths) for p in posts)
    return outcomes


async def wait_quiet(progress: Callable[[], tuple[int, ...]], timeout_s: float) -> bool:
    """Wait until progress() stays unchanged for STALE_S; False on timeout."""
    deadline = time.monotonic() + timeout_s
    last, changed_at = progress(), time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        now_value = progress()
        if now_value != last:
            last, changed_at = now_value, time.monotonic()
        elif time.monotonic() - changed_at > STALE_S:
            return True
    return False


def report(result: Result, ours: Outcome, over: Outcome, peers: dict[str, Outcome | str]) -> None:
    n = ours.files
    allowed = math.ceil(n / MAX_FILES) * 1.05
    settled_s = None if ours.last_s is None else ours.last_s - SETTLE_S

    def peer(attr: str) -> dict[str, float | str | None]:
        return {k: (v if isinstance(v, str) else getattr(v, attr)) for k, v in peers.items()}

    result.add("all POSTed, after last file settled", settled_s, "s", target=30.0)
    result.add("last file POSTed/seen, after last close", ours.last_s, "s", peers=peer("last_s"))
    naive = peers.get("naive")
    naive_posts = {"naive": naive.posts} if isinstance(naive, Outcome) else {}
    result.add("POSTs", ours.posts, target=allowed, peers=naive_posts)
    result.add("files missed", ours.missed, target=0, peers=peer("missed"))
    result.add("files POSTed twice", ours.objects - ours.reported, target=0)
    result.add("daemon CPU, burst start → all POSTed", ours.cpu_s, "s")
    done_s = None if ours.done_s is None else ours.done_s - SETTLE_S
    result.add("all DONE (post-action applied), after last file settled", done_s, "s")
    result.add("daemon CPU, burst start → all DONE", ours.cpu_done_s, "s")
    result.add("daemon peak RSS", ours.peak_rss_mb, "MB")
    witness = None if over.witness_seen is None else over.files - over.witness_seen
    result.add(
        f"overflow run ({over.files:,} files, max_queued_events={OVERFLOW_QUEUE}): missed",
        over.missed,
        target=0,
        peers={"watchfiles": witness},
        note="watchfiles column: raw awatch started under the same lowered limit, same files"
        + ("" if over.queue_limited else "; LIMIT NOT APPLIED (not root?)"),
    )
    over_settled = None if over.last_s is None else over.last_s - SETTLE_S
    result.add("overflow run: all POSTed after last file settled", over_settled, "s", target=30.0)
    result.notes.append(f"jetwatch timeline, s after last close: {ours.timeline}")
    result.notes.append(f"overflow run timeline: {over.timeline}")
    result.notes.append(f"API requests during the jetwatch burst: {ours.requests}")
    result.notes.append(
        f"burst moved in {ours.write_s:.2f} s ({n / max(ours.write_s, 1e-9):,.0f} files/s); "
        f"{DIRS} directories, {len(PAYLOAD)}-byte files, settle {SETTLE_S} s, "
        f"max_files {MAX_FILES}; emulator acknowledges without copying"
    )
    for name, value in peers.items():
        if isinstance(value, Outcome) and value.timed_out:
            result.notes.append(f"{name}: TIMEOUT before it finished")
    if ours.timed_out or over.timed_out:
        result.timeout("jetwatch did not POST every file in time")


async def run(ctx: Context) -> Result:
    n_files = ctx.size(5_000, 100_000)
    n_over = ctx.size(1_000, 100_000)
    result = Result(NAME, {"files": n_files, "dirs": DIRS, "max_files": MAX_FILES})
    async with BenchEmulator(ctx.work / "burst") as emu:
        say(f"burst: jetwatch, {n_files:,} files")
        ours = await jetwatch_burst(ctx, emu, n_files, "jetwatch")
        say(f"burst: jetwatch with max_queued_events={OVERFLOW_QUEUE}, {n_over:,} files")
        over = await jetwatch_burst(ctx, emu, n_over, "overflow", queue=OVERFLOW_QUEUE)
        peers: dict[str, Outcome | str] = {}
        if ctx.peers:
            say("burst: peers (raw watchfiles, inotifywait, naive uploader) on one folder")
            peers.update(await peers_burst(ctx, emu, n_files))
            peers.setdefault("inotifywait", "not available")
        report(result, ours, over, peers)
    return result
