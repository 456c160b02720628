"""Restart over a big tree already delivered: ready time against ``find`` over the same
tree, nothing re-sent, and a file dropped while the start-up scan runs.

The tree's files are all DONE in the ledger (taken there through the ledger API), so a
correct start sends nothing. Ready is the daemon's ``ready`` event: every folder had its
first full scan. Floors, measured just before on the same tree: ``find DIR -printf '%s
%T@\\n'`` (the fastest of two runs; the first warms the caches the daemon then finds warm
too), the raw Python stat loop, and the RSS of a process holding the tree's fingerprints
(``_floors``). A file is written into a new directory as soon as the daemon logs
``watch_mode_chosen`` (its first full scan starts then): it must be POSTed within settle +
linger + 1 s of its close, not queued behind the scan. The log's phase events give where
the time goes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

from bench.scenarios._daemon import DaemonProcess, event_time, write_config
from bench.scenarios._emulator import BenchEmulator
from bench.scenarios._floors import find_floor, memory_floor, walk_floor
from bench.scenarios._harness import Context, Result, say, wait_until, write_files
from bench.scenarios._tree import NEW_DIR, BigTree, big_tree

NAME = "startup"
SETTLE_S = 1.0
LINGER_S = 0.5
QUIET_AFTER_READY_S = 3.0  # settle 1 s + linger 0.5 s + margin: a re-send would show by then
DROPPED = f"{NEW_DIR}/dropped-during-scan.dat"

# Log events that mark the phases of a start, in order.
PHASES = (
    ("ledger_opened", "open ledger (incl. imports)"),
    ("intake_started", "load known fingerprints"),
    ("watch_mode_chosen", "choose mode (count dirs)"),
    ("scan_finished", "first full scan"),
    ("ready", "announce ready"),
)


def phase_times(daemon: DaemonProcess) -> list[tuple[str, float]]:
    """(phase, seconds it took) from the process start through the phase events."""
    out: list[tuple[str, float]] = []
    previous = daemon.started_at
    for event_name, label in PHASES:
        event = daemon.find(event_name)
        if event is None:
            continue
        at = event_time(event)
        out.append((label, at - previous))
        previous = at
    return out


async def start_daemon(
    ctx: Context, emu: BenchEmulator, tree: BigTree, tag: str, **opts: Any
) -> tuple[DaemonProcess, str]:
    job_name = f"Bench {tag}"
    job = await emu.job(tree.root, job_name)
    config = write_config(
        tree.base / f"{tag}.toml",
        base_url=emu.url,
        folder=tree.root,
        ledger=tree.ledger,
        job=job_name,
        **opts,
    )
    profile = ctx.out / f"profile-{tag}" if ctx.profile and tag in (NAME, "idle") else None
    daemon = DaemonProcess(
        config,
        profile_out=profile,
        tracemalloc=tag == NAME and ctx.profile,
        log_path=ctx.log_path(tag),
    )
    daemon.start()
    return daemon, job


async def memory_profile(ctx: Context, daemon: DaemonProcess) -> None:
    """With --profile: ask the launcher for its tracemalloc snapshot (SIGUSR1)."""
    target = ctx.out / f"profile-{NAME}.memory.txt"
    if not ctx.profile:
        return
    target.unlink(missing_ok=True)
    os.kill(daemon.pid, signal.SIGUSR1)
    await wait_until(target.exists, 30)


async def floors(ctx: Context, tree: BigTree) -> dict[str, Any]:
    """find, the raw stat loop and the memory floor of ``tree``, once per run."""
    key = f"floors:{tree.root}"
    cached = ctx.cache.get(key)
    if isinstance(cached, dict):
        return cached
    say(f"floors over {tree.files:,} files: find, raw stat loop, fingerprint set")
    got = {
        "find": await find_floor(tree.root),
        "walk": await walk_floor(tree.root),
        "memory": await memory_floor(tree.root),
    }
    ctx.cache[key] = got
    return got


async def drop_during_scan(daemon: DaemonProcess, root: Path, timeout_s: float) -> float | None:
    """Write ``DROPPED`` once the first scan starts (the watches are in place then: a file
    written before they are is found by that scan only); returns its close time (epoch s)."""
    if await daemon.wait_event("watch_installed", timeout_s) is None:
        return None
    return await asyncio.to_thread(write_files, root, [DROPPED], b"dropped")


async def measure(
    ctx: Context, emu: BenchEmulator, tree: BigTree, tag: str, *, drop: bool = True
) -> dict[str, Any]:
    """Start a daemon over ``tree`` and time it; the figures as a dict (TIMEOUT: ``ready``
    is None)."""
    got: dict[str, Any] = {"floors": await floors(ctx, tree), "ready": None}
    timeout_s = 120 if ctx.quick else 600
    since = len(emu.recorder.posts)
    daemon, job = await start_daemon(
        ctx, emu, tree, tag, settle_seconds=SETTLE_S, batch_linger_seconds=LINGER_S
    )
    got["daemon"] = daemon
    try:
        dropping = drop_during_scan(daemon, tree.root, timeout_s) if drop else None
        closed = None if dropping is None else await dropping
        ready = await daemon.wait_event("ready", timeout_s)
        if ready is None:
            got["tail"] = daemon.tail()
            return got
        got["ready"] = event_time(ready) - daemon.started_at
        await asyncio.sleep(QUIET_AFTER_READY_S)
        if closed is not None:
            path = "/" + DROPPED
            await wait_until(lambda: bool(emu.recorder.first_post_of(job, [path], since)), 30)
            posted = emu.recorder.first_post_of(job, [path], since).get(path)
            got["dropped"] = None if posted is None else posted - closed
            got["dropped_at"] = closed - daemon.started_at
        if tag == NAME:
            await memory_profile(ctx, daemon)
        got["rss_mb"], got["peak_mb"] = daemon.memory_mb()
    finally:
        await daemon.stop()
    got["resent"] = sum(len([p for p in post.paths if p != "/" + DROPPED])
                        for post in emu.recorder.of(job, since))  # fmt: skip
    scan = daemon.find("scan_done", full=True)
    got["scan_end"] = None if scan is None else event_time(scan) - daemon.started_at
    return got


def report(result: Result, got: dict[str, Any], ctx: Context) -> None:
    fl, ready = got["floors"], got["ready"]
    find_s, walk_s = fl["find"]["wall_s"], fl["walk"]["wall_s"]
    result.add("ready (first scan done), from process start", ready, "s", target_ratio=3.0,
               floor=find_s, floor_label="find -printf '%s %T@\\n'")  # fmt: skip
    result.add("ready, against the raw Python stat loop", ready, "s",
               floor=walk_s, floor_label="scandir + stat, one thread")  # fmt: skip
    result.add("files re-sent", got.get("resent"), target=0)
    dropped_at, scan_end = got.get("dropped_at"), got.get("scan_end")
    during = dropped_at is not None and scan_end is not None and dropped_at < scan_end
    note = (
        f"dropped {dropped_at:.2f} s after process start; first scan ended at {scan_end:.2f} s"
        + ("" if during else " (BEFORE the drop: not a drop during the scan)")
        if dropped_at is not None and scan_end is not None
        else "not dropped"
    )
    result.add("file dropped during the start-up scan: close → POST", got.get("dropped"), "s",
               target=SETTLE_S + LINGER_S + 1.0, note=note)  # fmt: skip
    mem = fl["memory"]
    result.add("RSS after ready", got.get("rss_mb"), "MB", floor=mem["rss_mb"],
               floor_label="imports + fingerprint set")  # fmt: skip
    result.add("peak RSS (VmHWM)", got.get("peak_mb"), "MB")
    for label, seconds in phase_times(got["daemon"]):
        result.add(f"phase: {label}", seconds, "s")
    migration = ctx.cache.get("migration")
    if isinstance(migration, tuple):
        old, new, took = migration
        result.add(f"ledger upgrade, schema {old} → {new} (once; cached ledger)", took, "s")
    scan = got["daemon"].find("scan_done", full=True)
    if scan is not None:
        result.notes.append(f"first scan: {scan.get('files')} files in {scan.get('seconds')} s")
    result.notes.append(
        f"floors: find {find_s:.2f} s wall ({fl['find']['cpu_s']:.2f} s CPU), raw stat loop "
        f"{walk_s:.2f} s ({fl['walk']['files']:,} files), memory floor "
        f"{mem['baseline_mb']:.0f} MB after imports, {mem['rss_mb']:.0f} MB with the set"
    )


async def run(ctx: Context) -> Result:
    tree = await big_tree(ctx)
    result = Result(NAME, {"files": tree.files, "dirs": tree.dirs, "poll": "auto"})
    how = "reused from --cache" if tree.reused else "built"
    result.notes.append(
        f"tree {how} in {tree.build_s:.1f} s (files created, then taken to DONE through "
        "the ledger API)"
    )
    started = time.monotonic()
    async with BenchEmulator(ctx.work / "startup") as emu:
        got = await measure(ctx, emu, tree, NAME)
    if got["ready"] is None:
        result.timeout(f"not ready within {time.monotonic() - started:.0f} s\n{got.get('tail')}")
        return result
    ctx.cache[f"startup:{tree.files}"] = got
    report(result, got, ctx)
    return result
