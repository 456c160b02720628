"""Many folders in one daemon: 200 folders of 5,000 files each (quick: 10 of 1,000), all
DONE in the ledger; start-up, idle CPU and RSS, then a burst in one folder while the
others idle.

Every folder is under one root, the source profile of one job (``profile_root``). With
more folders than fs.inotify.max_user_instances (128 by default) allows, the bench raises
it for the scenario as deploy/edge.md advises (and restores it), so that neither the
daemon nor the other programs of this user run out; how many folders got events is a
figure. Floors in the same run: ``find`` over the root, raw watchfiles watching the root
over the same idle window, the fingerprint-set process over the root, and the raw work of
the burst on its files (``_floors``).
"""

from __future__ import annotations

import asyncio
import math
import shutil
import time
from collections import Counter

from bench.scenarios._burst import LINGER_S, MAX_FILES, SETTLE_S, Outcome, run_burst, stage
from bench.scenarios._daemon import DaemonProcess, cpu_of, event_time, write_config_multi
from bench.scenarios._emulator import BenchEmulator
from bench.scenarios._floors import burst_floor
from bench.scenarios._harness import (
    Context,
    Result,
    raise_user_instances,
    restore_user_instances,
    say,
    wait_until,
)
from bench.scenarios._tree import BigTree, layout, tidy, tree
from bench.scenarios.idle import raw_watcher
from bench.scenarios.startup import floors

NAME = "many_folders"
BURST_FOLDER = "m000"
CALM_S = 1.0


def modes(daemon: DaemonProcess) -> Counter[str]:
    """Watch mode of each folder, from the daemon's log."""
    found: dict[str, str] = {}
    for event in daemon.events:
        if event.get("event") in ("watch_mode_chosen", "watch_fallback_to_scan"):
            found[str(event.get("folder"))] = (
                "scan" if "fallback" in event["event"] else str(event.get("mode"))
            )
    return Counter(found.values())


def config(ctx: Context, emu: BenchEmulator, big: BigTree, job_name: str) -> DaemonProcess:
    folders: list[dict[str, object]] = [
        {
            "name": name,
            "path": big.root / below,
            "job": job_name,
            "profile_root": big.root,
            "settle_seconds": SETTLE_S,
            "batch_linger_seconds": LINGER_S,
            "max_files": MAX_FILES,
        }
        for name, below in sorted(big.folders.items())
    ]
    path = write_config_multi(
        big.base / f"{NAME}.toml",
        base_url=emu.url,
        folders=folders,
        ledger_keys={"path": big.ledger},
    )
    return DaemonProcess(path, log_path=ctx.log_path(NAME))


async def run(ctx: Context) -> Result:
    n_folders, per_folder = ctx.size(10, 200), ctx.size(1_000, 5_000)
    n_burst, window_s = ctx.size(1_000, 5_000), ctx.size(5, 30)
    result = Result(NAME, {"folders": n_folders, "files_per_folder": per_folder,
                           "burst_files": n_burst, "idle_window_s": window_s})  # fmt: skip
    old_limit = raise_user_instances(n_folders + 256)
    if old_limit is not None:
        ctx.cache["user_instances_restore"] = old_limit
        result.notes.append(f"fs.inotify.max_user_instances raised {old_limit} → "
                            f"{n_folders + 256} for this scenario, then restored")  # fmt: skip
    try:
        big = await tree(ctx, per_folder, n_folders)
        await measure(ctx, big, result, n_burst, window_s)
    finally:
        if old_limit is not None:
            restore_user_instances(old_limit)
            ctx.cache.pop("user_instances_restore", None)
    return result


async def measure(ctx: Context, big: BigTree, result: Result, n_burst: int, window_s: int) -> None:
    fl = await floors(ctx, big)
    timeout_s = 120 if ctx.quick else 900
    witness = raw_watcher(str(big.root))
    staging, folder = big.root / "staging", big.root / BURST_FOLDER
    outcome = Outcome(n_burst, staged=await stage(staging, n_burst, prefix="burst/"))
    async with BenchEmulator(ctx.work / NAME) as emu:
        job_name = "Many folders"
        job = await emu.job(big.root, job_name)
        daemon = config(ctx, emu, big, job_name)
        daemon.start()
        try:
            ready = await daemon.wait_event("ready", timeout_s)
            if ready is None:
                result.timeout(f"not ready within {timeout_s} s\n{daemon.tail()}")
                return
            ready_s = event_time(ready) - daemon.started_at
            await wait_until(lambda: witness.has("ready"), timeout_s)
            await asyncio.sleep(CALM_S)
            cpu0, raw0, t0 = daemon.cpu_s(), cpu_of(witness.proc.pid), time.monotonic()
            await asyncio.sleep(window_s)
            idle_s = time.monotonic() - t0
            cpu_pct = 100 * (daemon.cpu_s() - cpu0) / idle_s
            raw_pct = 100 * (cpu_of(witness.proc.pid) - raw0) / idle_s
            rss_mb, peak_mb = daemon.memory_mb()
            say(f"{NAME}: burst of {n_burst:,} files in {BURST_FOLDER}")
            await run_burst(emu, job, (staging, folder, f"/{BURST_FOLDER}"), daemon, outcome)
            found = modes(daemon)
        finally:
            await daemon.stop()
            await witness.stop()
    burst = await burst_floor(folder / "burst", ctx.work / NAME / "floor.db")
    await asyncio.to_thread(tidy, big.root, layout(big.files // len(big.folders), len(big.folders)))
    await asyncio.to_thread(shutil.rmtree, staging, True)
    n_folders = len(big.folders)
    result.add("folders watched by events (the rest are scanned)", found.get("events", 0),
               target=n_folders, better="higher")  # fmt: skip
    result.add("ready, from process start", ready_s, "s", floor=fl["find"]["wall_s"],
               floor_label="find over the root")  # fmt: skip
    result.add(f"idle CPU over {window_s} s (% of one core)", cpu_pct, "%", floor=raw_pct,
               floor_label="raw watchfiles on the root")  # fmt: skip
    result.add("RSS, idle", rss_mb, "MB", floor=fl["memory"]["rss_mb"],
               floor_label="imports + fingerprint set")  # fmt: skip
    result.add("peak RSS (VmHWM)", peak_mb, "MB")
    result.add(f"burst in one folder ({n_burst:,} files): all POSTed, past last close + "
               "settle + linger", outcome.beyond_s, "s", target=2.0, floor=burst["wall_s"],
               floor_label="raw: stat ×2 + SQLite insert + POST bodies")  # fmt: skip
    result.add("burst: POSTs", outcome.posts, target=math.ceil(n_burst / MAX_FILES) + 1)
    result.add("burst: files missed", outcome.missed, target=0)
    result.add("burst: files POSTed twice", outcome.objects - outcome.reported, target=0)
    result.add("burst: daemon CPU to all POSTed", outcome.cpu_s, "s", floor=burst["cpu_s"],
               floor_label="raw CPU")  # fmt: skip
    result.notes.append(f"watch modes: {dict(found)}; {big.files:,} files in {n_folders} "
                        f"folders, tree {'reused' if big.reused else 'built'} in "
                        f"{big.build_s:.0f} s; burst timeline {outcome.timeline}")  # fmt: skip
    if outcome.timed_out:
        result.timeout("the burst was not all POSTed in time")
