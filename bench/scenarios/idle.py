"""Idle cost: CPU (% of one core) and RSS of the daemon watching the big tree, nothing new.

Floors in the same run: for CPU, raw ``watchfiles.awatch`` (all its defaults) watching the
same tree over the same window (started before it, idle too); for RSS, a process with the
daemon's imports holding the fingerprints of the tree's files (``_floors``, shared with
``startup``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from bench.scenarios._daemon import ChildProcess, cpu_of
from bench.scenarios._emulator import BenchEmulator
from bench.scenarios._harness import Context, Result, wait_until
from bench.scenarios._tree import big_tree
from bench.scenarios.startup import floors, start_daemon

NAME = "idle"
CALM_S = 1.0  # after ready: let start-up work (token, job lookup, first polls) finish


def raw_watcher(root: str) -> ChildProcess:
    """Raw awatch on ``root`` with all its defaults (it wakes every 5 s)."""
    cmd = [sys.executable, "-m", "bench.scenarios._peers", "watchfiles", root]
    return ChildProcess([*cmd, "--timeout-ms", "5000"])


async def run(ctx: Context) -> Result:
    tree = await big_tree(ctx)
    window_s = ctx.size(5, 60)
    result = Result(NAME, {"files": tree.files, "dirs": tree.dirs, "window_s": window_s})
    timeout_s = 120 if ctx.quick else 600
    floor = await floors(ctx, tree)
    witness = raw_watcher(str(tree.root))
    async with BenchEmulator(ctx.work / "idle") as emu:
        daemon, _job = await start_daemon(ctx, emu, tree, NAME)
        try:
            if await daemon.wait_event("ready", timeout_s) is None:
                result.timeout(f"not ready within {timeout_s} s\n{daemon.tail()}")
                return result
            await wait_until(lambda: witness.has("ready"), timeout_s)
            await asyncio.sleep(CALM_S)
            if ctx.profile:
                os.kill(daemon.pid, signal.SIGUSR2)  # profile the idle window only
            cpu_before, raw_before = daemon.cpu_s(), cpu_of(witness.proc.pid)
            samples = []
            for _ in range(window_s):
                await asyncio.sleep(1.0)
                samples.append(daemon.memory_mb()[0])
            cpu_s = daemon.cpu_s() - cpu_before
            raw_s = cpu_of(witness.proc.pid) - raw_before
            rss_mb, peak_mb = daemon.memory_mb()
            mode = daemon.find("watch_mode_chosen")
        finally:
            await daemon.stop()
            await witness.stop()
    result.add(f"CPU over {window_s} s (% of one core)", 100 * cpu_s / window_s, "%",
               target=0.3, floor=100 * raw_s / window_s,
               floor_label="raw watchfiles on the same tree")  # fmt: skip
    mem = floor["memory"]
    result.add("RSS at end of window", rss_mb, "MB", target=150.0, floor=mem["rss_mb"],
               floor_label="imports + fingerprint set")  # fmt: skip
    result.add("RSS growth over window", samples[-1] - samples[0], "MB")
    result.add("peak RSS (VmHWM, includes start-up)", peak_mb, "MB")
    if mode is not None:
        result.notes.append(f"watch mode: {mode.get('mode')} ({mode.get('reason')})")
    result.notes.append(
        "CPU is utime+stime of the process, all threads (/proc/PID/stat), 10 ms ticks: "
        f"over {window_s} s one tick is {100 * 0.01 / window_s:.3g} % of a core"
    )
    return result
