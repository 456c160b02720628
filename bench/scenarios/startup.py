"""Start-up over a big tree already delivered: time to ready, nothing re-sent, peak RSS.

The tree's files are all DONE in the ledger (taken there through the ledger API), so a
correct start sends nothing. Ready is the daemon's ``ready`` event: every folder had its
first full scan. The log's phase events give the breakdown of where the time goes.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from bench.scenarios._daemon import DaemonProcess, event_time, write_config
from bench.scenarios._emulator import BenchEmulator
from bench.scenarios._harness import Context, Result, wait_until
from bench.scenarios._tree import BigTree, big_tree

NAME = "startup"
QUIET_AFTER_READY_S = 3.0  # settle 1 s + linger 0.5 s + margin: a re-send would show by then

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


async def run(ctx: Context) -> Result:
    tree = await big_tree(ctx)
    result = Result(NAME, {"files": tree.files, "dirs": tree.dirs, "poll": "auto"})
    how = "reused from --cache" if tree.reused else "built"
    result.notes.append(
        f"tree {how} in {tree.build_s:.1f} s (files created, then taken to DONE through "
        "the ledger API)"
    )
    timeout_s = 120 if ctx.quick else 600
    async with BenchEmulator(ctx.work / "startup") as emu:
        since = len(emu.recorder.posts)
        daemon, job = await start_daemon(ctx, emu, tree, NAME)
        try:
            ready = await daemon.wait_event("ready", timeout_s)
            if ready is None:
                result.timeout(f"not ready within {timeout_s} s\n{daemon.tail()}")
                return result
            await asyncio.sleep(QUIET_AFTER_READY_S)
            await memory_profile(ctx, daemon)
            rss_mb, peak_mb = daemon.memory_mb()
        finally:
            await daemon.stop()
    resent = sum(len(p.paths) for p in emu.recorder.of(job, since))
    result.add("ready (first scan done)", event_time(ready) - daemon.started_at, "s", target=15.0)
    result.add("files re-sent", resent, target=0)
    result.add("peak RSS (VmHWM)", peak_mb, "MB", target=250.0)
    result.add("RSS after ready", rss_mb, "MB")
    for label, seconds in phase_times(daemon):
        result.add(f"phase: {label}", seconds, "s")
    migration = ctx.cache.get("migration")
    if isinstance(migration, tuple):
        old, new, took = migration
        result.add(f"ledger upgrade, schema {old} → {new} (once; cached ledger)", took, "s")
    scan = daemon.find("scan_done", full=True)
    if scan is not None:
        result.notes.append(f"first scan: {scan.get('files')} files in {scan.get('seconds')} s")
    return result
