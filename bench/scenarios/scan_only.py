"""Scan-only mode (``poll = "scan"``): full rescan time of the big tree, and new-file latency.

A new file is written at a random moment between scans; the figure is close → POST, which
includes the batch linger, so it is a conservative measure of "noticed". Passes stat the
directories and list only those that changed; a full walk runs every ``reconcile_of``.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

from bench.scenarios._daemon import DaemonProcess
from bench.scenarios._emulator import BenchEmulator
from bench.scenarios._harness import Context, Result, percentile, say, wait_until, write_files
from bench.scenarios._tree import big_tree
from bench.scenarios.startup import start_daemon

NAME = "scan_only"
SETTLE_S = 1.0
LINGER_S = 0.5


def reconcile_of(interval_s: float) -> float:
    """Full walks far more often than the default 600 s: some fall inside the measurement
    (a file arriving during one is the worst case), and the full rescan is measured."""
    return 3 * interval_s


def scan_seconds(daemon: DaemonProcess) -> list[float]:
    return [float(e["seconds"]) for e in daemon.all("scan_done") if e.get("full")]


def pass_seconds(daemon: DaemonProcess) -> list[float]:
    """Durations of the passes over changed directories (logged at debug)."""
    return [float(e["seconds"]) for e in daemon.all("scan_done") if e.get("incremental")]


async def wait_posted(
    emu: BenchEmulator, job: str, daemon: DaemonProcess, path: str, since: int, timeout_s: float
) -> float | None:
    """Arrival time of the first POST naming ``path``; None on timeout or a dead daemon."""
    found: dict[str, float] = {}

    def posted() -> bool:
        found.update(emu.recorder.first_post_of(job, [path], since))
        return bool(found) or not daemon.alive()

    await wait_until(posted, timeout_s)
    return found.get(path)


async def new_file_latencies(
    emu: BenchEmulator, job: str, daemon: DaemonProcess, root: Path, samples: int, wait_s: float
) -> list[float]:
    out: list[float] = []
    interval_s = float(wait_s)
    for i in range(samples):
        await asyncio.sleep(random.uniform(0.0, interval_s / 2))
        rel = f"new/scan-{i:03d}.dat"
        since = len(emu.recorder.posts)
        closed = await asyncio.to_thread(write_files, root, [rel], b"new")
        found = await wait_posted(emu, job, daemon, "/" + rel, since, 3 * interval_s + 30)
        if found is None:
            say(f"scan_only: {rel} not POSTed in time")
            break
        out.append(found - closed)
    return out


async def measure(
    emu: BenchEmulator, job: str, daemon: DaemonProcess, root: Path, interval_s: float, samples: int
) -> dict[str, Any]:
    """New-file latencies, then wait for a rescan after the first; CPU and RSS meanwhile."""
    cpu_before, wall_before = daemon.cpu_s(), time.monotonic()
    scan_wait = interval_s + max(scan_seconds(daemon) or [0.0])
    latencies = await new_file_latencies(emu, job, daemon, root, samples, scan_wait)
    # At least one rescan after the first: the steady-state figure.
    await wait_until(lambda: len(scan_seconds(daemon)) >= 2, 3 * scan_wait + 30)
    rss_mb, peak_mb = daemon.memory_mb()
    return {
        "latencies": latencies,
        "cpu_s": daemon.cpu_s() - cpu_before,
        "elapsed_s": time.monotonic() - wall_before,
        "rss_mb": rss_mb,
        "peak_mb": peak_mb,
    }


def report(result: Result, got: dict[str, Any], daemon: DaemonProcess, interval_s: float) -> None:
    latencies: list[float] = got["latencies"]
    scans, passes = scan_seconds(daemon), pass_seconds(daemon)
    result.add("full rescan (median of later scans)", percentile(scans[1:] or scans, 50), "s",
               target=10.0)  # fmt: skip
    result.add("first scan at start", scans[0] if scans else None, "s")
    result.add(f"pass over changed directories, median of {len(passes)}",
               percentile(passes, 50), "s")  # fmt: skip
    target_s = interval_s + SETTLE_S + 1.0
    result.add(f"new file close → POST, max of {len(latencies)}", max(latencies, default=None),
               "s", target=target_s)  # fmt: skip
    result.add("new file close → POST, median", percentile(latencies, 50), "s")
    result.add("peak RSS (VmHWM)", got["peak_mb"], "MB")
    result.add("RSS at end", got["rss_mb"], "MB")
    cpu_s, elapsed_s = got["cpu_s"], got["elapsed_s"]
    result.notes.append(
        f"{len(scans)} full scans and {len(passes)} passes over changed directories seen "
        f"(full walk every reconcile_seconds = {reconcile_of(interval_s):g} s ±25 %); daemon "
        f"CPU {cpu_s:.1f} s while measuring over {elapsed_s:.0f} s "
        f"({100 * cpu_s / elapsed_s:.0f} % of one core); daemon logs at debug"
    )


async def run(ctx: Context) -> Result:
    tree = await big_tree(ctx)
    interval_s = float(ctx.size(2, 10))
    samples = ctx.size(2, 5)
    params = {"files": tree.files, "scan_interval_s": interval_s, "settle_s": SETTLE_S}
    result = Result(NAME, params)
    timeout_s = 120 if ctx.quick else 600
    async with BenchEmulator(ctx.work / "scan_only") as emu:
        daemon, job = await start_daemon(
            ctx,
            emu,
            tree,
            NAME,
            poll="scan",
            scan_interval_seconds=interval_s,
            settle_seconds=SETTLE_S,
            batch_linger_seconds=LINGER_S,
            reconcile_seconds=reconcile_of(interval_s),
            log_level="debug",  # the passes over changed directories are logged at debug
        )
        try:
            if await daemon.wait_event("ready", timeout_s) is None:
                result.timeout(f"not ready within {timeout_s} s\n{daemon.tail()}")
                return result
            got = await measure(emu, job, daemon, tree.root, interval_s, samples)
        finally:
            await daemon.stop()
    report(result, got, daemon, interval_s)
    if len(got["latencies"]) < samples:
        result.timeout("a new file was not POSTed in time")
    return result
