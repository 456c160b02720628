"""Burst: N small files over 100 directories at once → all POSTed, in how many POSTs, none
lost; the ops endpoints' answer times meanwhile; the floor of the same work beside it.

The files are staged beside the watched folder and renamed into it as fast as possible
(see ``_burst``). jetwatch runs alone, with the ``_prober`` child asking /healthz,
/readyz, /status, / and /metrics at a steady rate (idle first: the floor of an answer
time; then during the burst). The floor of the burst is the raw work on the same files
in one thread, after the daemon stopped: stat each twice, insert their rows into SQLite,
build the POST bodies (``_floors``). One extra jetwatch run lowers
fs.inotify.max_queued_events while its watcher starts, forcing a queue overflow: every
file must still arrive; raw watchfiles started under the same limit shows what events
alone would lose. Then the peers (raw watchfiles, inotifywait, the naive uploader) watch
one folder together and get the identical burst.

Other ledger backends: ``measure(ctx, name, ledger=...)`` runs the same burst (with the
probe and the floor) on the ledger a ``LedgerSpec`` factory describes, e.g. a
``postgres`` scenario module; the SQLite burst's outcome of the same size is left in
``ctx.cache["burst:N:sqlite"]`` for comparison.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.scenarios._burst import (
    DIRS,
    IDLE_PROBE_S,
    LINGER_S,
    MAX_FILES,
    PAYLOAD,
    SETTLE_S,
    LedgerSpec,
    Outcome,
    jetwatch_burst,
    peer_seen,
    stage,
    write_burst,
)
from bench.scenarios._daemon import ChildProcess
from bench.scenarios._emulator import BenchEmulator
from bench.scenarios._harness import Context, Result, say, wait_until
from bench.scenarios._peers import inotifywait_available

NAME = "burst"
OVERFLOW_QUEUE = 256
STALE_S = 1.5  # peers that reported nothing new for this long are done
FLOOR_LABEL = "raw: stat ×2 + SQLite insert + POST bodies"
ENDPOINTS = ("loop lag (/healthz)", "loop lag (gauge)", "/healthz", "/readyz", "/status", "/")


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
    staging = folder.parent / "staging"
    paths = await stage(staging, n_files)
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
        started, last_close = await write_burst(staging, folder, paths)
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


def report_burst(result: Result, ours: Outcome, peers: dict[str, Outcome | str]) -> None:
    """The burst's figures, each with its floor (the raw work on the same files)."""
    n = ours.files
    floor = ours.floor or {}
    wall, cpu = floor.get("wall_s"), floor.get("cpu_s")

    def peer(attr: str) -> dict[str, float | str | None]:
        return {k: (v if isinstance(v, str) else getattr(v, attr)) for k, v in peers.items()}

    result.add(
        "all POSTed, past last close + settle + linger",
        ours.beyond_s,
        "s",
        target=2.0,
        floor=wall,
        floor_label=FLOOR_LABEL,
    )
    result.add("last file POSTed/seen, after last close", ours.last_s, "s", peers=peer("last_s"))
    naive = peers.get("naive")
    naive_posts = {"naive": naive.posts} if isinstance(naive, Outcome) else {}
    result.add("POSTs", ours.posts, target=math.ceil(n / MAX_FILES) + 1, peers=naive_posts)
    result.add("files missed", ours.missed, target=0, peers=peer("missed"))
    result.add("files POSTed twice", ours.objects - ours.reported, target=0)
    result.add("daemon CPU, burst start → all POSTed", ours.cpu_s, "s", floor=cpu,
               floor_label=FLOOR_LABEL + " (CPU)")  # fmt: skip
    per_file = None if ours.cpu_s is None else 1e6 * ours.cpu_s / n
    floor_per_file = None if cpu is None else 1e6 * cpu / n
    result.add("daemon CPU per file (to all POSTed)", per_file, "µs",
               floor=floor_per_file, floor_label="raw CPU per file")  # fmt: skip
    done_s = None if ours.done_s is None else ours.done_s - SETTLE_S - LINGER_S
    result.add("all DONE (post-action applied), past last close + settle + linger", done_s, "s")
    result.add("daemon CPU, burst start → all DONE", ours.cpu_done_s, "s")
    result.add("daemon peak RSS", ours.peak_rss_mb, "MB")
    parts = {k: round(v["wall_s"], 3) for k, v in floor.get("parts", {}).items()}
    result.notes.append(f"floor parts, wall s: {parts} (one thread, after the daemon stopped)")


def report_probe(result: Result, ours: Outcome) -> None:
    """Answer times (and loop lag) during the burst beside the same figures when idle."""
    for key in (*ENDPOINTS, "/metrics"):
        load, idle = ours.probe_load.get(key), ours.probe_idle.get(key)
        if load is None:
            result.add(f"{key} during burst", None, "ms", note="no samples")
            continue
        label = key
        if key == "/" and load["statuses"] == [404]:
            label = "/ (web console not built yet: 404)"
        elif key.startswith("/") and load["statuses"] != [200] and key != "/readyz":
            label = f"{key} (statuses {load['statuses']})"
        timed = key in ENDPOINTS
        for stat, target in (("p50", None), ("p99", 0.05), ("max", 0.25)):
            result.add(
                f"{label} {stat} during burst (n={load['n']})",
                1000 * load[stat],
                "ms",
                target=None if target is None or not timed else 1000 * target,
                floor=None if idle is None else 1000 * idle[stat],
                floor_label="idle daemon, same probe",
            )
    result.notes.append(
        "probe: a separate process asks /healthz, /readyz, / 5×/s and /status, /metrics "
        "2×/s, each over a kept-alive "
        "connection, from the first rename until every file is DONE; floors are the same "
        f"figures over {IDLE_PROBE_S:g} s with the daemon idle just before; loop lag is the "
        "daemon's own 0.5 s sleeper (/healthz loop_lag_s, jetwatch_loop_lag_seconds)"
    )


def report_overflow(result: Result, over: Outcome) -> None:
    witness = None if over.witness_seen is None else over.files - over.witness_seen
    result.add(
        f"overflow run ({over.files:,} files, max_queued_events={OVERFLOW_QUEUE}): missed",
        over.missed,
        target=0,
        peers={"watchfiles": witness},
        note="watchfiles column: raw awatch started under the same lowered limit, same files"
        + ("" if over.queue_limited else "; LIMIT NOT APPLIED (not root?)"),
    )
    result.add("overflow run: all POSTed, past last close + settle + linger", over.beyond_s,
               "s", target=2.0)  # fmt: skip
    result.notes.append(f"overflow run timeline: {over.timeline}")


def notes(result: Result, ours: Outcome, peers: dict[str, Outcome | str]) -> None:
    n = ours.files
    result.notes.append(f"jetwatch timeline, s after last close: {ours.timeline}")
    result.notes.append(f"API requests during the jetwatch burst: {ours.requests}")
    result.notes.append(
        f"burst moved in {ours.write_s:.2f} s ({n / max(ours.write_s, 1e-9):,.0f} files/s); "
        f"{DIRS} directories, {len(PAYLOAD)}-byte files, settle {SETTLE_S} s, linger "
        f"{LINGER_S} s, max_files {MAX_FILES}; emulator acknowledges without copying"
    )
    for name, value in peers.items():
        if isinstance(value, Outcome) and value.timed_out:
            result.notes.append(f"{name}: TIMEOUT before it finished")
    if ours.timed_out:
        result.timeout("jetwatch did not POST every file in time")


async def measure(
    ctx: Context,
    name: str,
    *,
    ledger: Callable[[Path], LedgerSpec] | None = None,
    overflow: bool = True,
    peers: bool = True,
) -> Result:
    """The burst scenario on a given ledger backend (default SQLite); see the module doc."""
    n_files = ctx.size(5_000, 100_000)
    n_over = ctx.size(1_000, 100_000)
    result = Result(name, {"files": n_files, "dirs": DIRS, "max_files": MAX_FILES})
    async with BenchEmulator(ctx.work / name) as emu:
        say(f"{name}: jetwatch, {n_files:,} files, endpoints probed")
        ours = await jetwatch_burst(ctx, emu, n_files, name, ledger=ledger, probe=True)
        label = "sqlite" if ledger is None else ledger(ctx.work / "unused").label
        result.params["ledger"] = label
        ctx.cache[f"burst:{n_files}:{label}"] = ours
        over = None
        if overflow:
            say(f"{name}: jetwatch with max_queued_events={OVERFLOW_QUEUE}, {n_over:,} files")
            tag = f"{name}-overflow"
            over = await jetwatch_burst(
                ctx, emu, n_over, tag, queue=OVERFLOW_QUEUE, ledger=ledger, floor=False
            )
        found: dict[str, Outcome | str] = {}
        if peers and ctx.peers:
            say(f"{name}: peers (raw watchfiles, inotifywait, naive uploader) on one folder")
            found.update(await peers_burst(ctx, emu, n_files))
            found.setdefault("inotifywait", "not available")
    report_burst(result, ours, found)
    report_probe(result, ours)
    if over is not None:
        report_overflow(result, over)
        if over.timed_out:
            result.timeout("the overflow run did not POST every file in time")
    notes(result, ours, found)
    return result


async def run(ctx: Context) -> Result:
    return await measure(ctx, NAME)
