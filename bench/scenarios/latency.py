"""Single-file latency: a file is closed, then how long until its delivery is POSTed.

Files are written one at a time (the next only after the previous one was POSTed, at a
random offset so writes do not line up with the daemon's timers). The peers watch the
same folder at the same time: raw watchfiles and inotifywait report when they *saw* the
file, the naive uploader when its POST arrived (it posts to a job of its own). The floor
of jetwatch's own delay (beyond settle + linger) is the raw inotify reader's close → event
seen (``_peers inotify``), always run, also with ``--no-peers``.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time

from bench.scenarios._daemon import ChildProcess, DaemonProcess, write_config
from bench.scenarios._emulator import BenchEmulator
from bench.scenarios._harness import Context, Result, percentile, say, wait_until, write_files
from bench.scenarios._peers import inotifywait_available

NAME = "latency"
SETTLE_S = 1.0
LINGER_S = 0.5
PAYLOAD = b"x" * 4096


def floor_command(folder: str) -> list[str]:
    return [sys.executable, "-m", "bench.scenarios._peers", "inotify", folder, "--per-file"]


def peer_commands(url: str, naive_job: str, folder: str) -> dict[str, list[str]]:
    peers = {
        "watchfiles": [sys.executable, "-m", "bench.scenarios._peers", "watchfiles", folder],
        "naive": [sys.executable, "-m", "bench.naive_uploader", url, naive_job, folder],
    }
    if inotifywait_available():
        peers["inotifywait"] = [
            sys.executable, "-m", "bench.scenarios._peers", "inotifywait", folder,
        ]  # fmt: skip
    for name in ("watchfiles", "inotifywait"):
        if name in peers:
            peers[name].append("--per-file")
    return peers


def peer_latencies(peer: ChildProcess, closes: dict[str, float]) -> list[float]:
    seen = {str(x["p"]): float(x["t"]) for x in peer.lines if x.get("kind") == "seen"}
    return [seen[rel] - t for rel, t in closes.items() if rel in seen]


async def drop_files(
    emu: BenchEmulator, job: str, folder_files: tuple[object, int], since: int
) -> dict[str, float]:
    """Write the files one by one; return relpath → close time of those that were POSTed."""
    folder, n_files = folder_files
    closes: dict[str, float] = {}
    for i in range(n_files):
        rel = f"lat-{i:04d}.dat"
        closes[rel] = await asyncio.to_thread(write_files, folder, [rel], PAYLOAD)
        posted = await wait_until(
            lambda r=rel: bool(emu.recorder.first_post_of(job, ["/" + r], since)),
            SETTLE_S + LINGER_S + 15,
        )
        if not posted:
            say(f"latency: {rel} not POSTed in time")
            break
        await asyncio.sleep(random.uniform(0.1, 0.6))
    return closes


async def run(ctx: Context) -> Result:
    n_files = ctx.size(5, 40)
    result = Result(NAME, {"files": n_files, "settle_s": SETTLE_S, "linger_s": LINGER_S})
    base = ctx.work / "latency"
    folder = base / "in"
    folder.mkdir(parents=True)
    async with BenchEmulator(base) as emu:
        job_name = "Bench Latency"
        job = await emu.job(folder, job_name)
        naive_job = await emu.job(folder, "Naive Latency")
        config = write_config(
            base / "jetwatch.toml",
            base_url=emu.url,
            folder=folder,
            ledger=base / "ledger.db",
            job=job_name,
            settle_seconds=SETTLE_S,
            batch_linger_seconds=LINGER_S,
        )
        daemon = DaemonProcess(config, log_path=ctx.log_path(NAME))
        daemon.start()
        commands = peer_commands(emu.url, naive_job, str(folder)) if ctx.peers else {}
        commands["raw inotify"] = floor_command(str(folder))
        peers = {k: ChildProcess(v) for k, v in commands.items()}
        try:
            if await daemon.wait_event("ready", 60) is None:
                result.timeout("daemon not ready in 60 s\n" + daemon.tail())
                return result
            await wait_until(lambda: all(p.has("ready") for p in peers.values()), 15)
            since = len(emu.recorder.posts)
            closes = await drop_files(emu, job, (folder, n_files), since)
            await asyncio.sleep(1.0)  # the peers' last reports
        finally:
            await daemon.stop()
            for peer in peers.values():
                await peer.stop()
        report(result, emu, job, naive_job, closes, peers, since)
    return result


def report(
    result: Result,
    emu: BenchEmulator,
    job: str,
    naive_job: str,
    closes: dict[str, float],
    peers: dict[str, ChildProcess],
    since: int,
) -> None:
    posted = emu.recorder.first_post_of(job, ["/" + r for r in closes], since)
    ours = [posted["/" + r] - t for r, t in closes.items() if "/" + r in posted]
    naive_posted = emu.recorder.first_post_of(naive_job, ["/" + r for r in closes], since)
    lat = {name: peer_latencies(peer, closes) for name, peer in peers.items() if name != "naive"}
    raw = lat.pop("raw inotify", [])
    if "naive" in peers:
        lat["naive"] = [
            naive_posted["/" + r] - t for r, t in closes.items() if "/" + r in naive_posted
        ]
    missing = "" if "inotifywait" in peers or len(peers) == 1 else "not available"
    base_s = SETTLE_S + LINGER_S
    for q, slack in ((50, 0.3), (99, 1.0)):
        peer_values: dict[str, float | str | None] = {k: percentile(v, q) for k, v in lat.items()}
        if missing:
            peer_values["inotifywait"] = missing
        result.add(
            f"p{q} close → POST (n={len(ours)})",
            percentile(ours, q),
            "s",
            target=base_s + slack,
            peers=peer_values,
        )
    overhead = percentile(ours, 50)
    result.add(
        "p50 beyond settle + linger (jetwatch's own delay)",
        None if overhead is None else 1000 * (overhead - base_s),
        "ms",
        target=100.0,
        floor=None if not raw else 1000 * (percentile(raw, 50) or 0.0),
        floor_label="raw inotify: close → event read",
        note="the floor can be ≤ 0: the reader got the event before the writer, just out "
        "of close(), took the time; no ratio then",
    )
    own = sorted(t - base_s for t in ours)
    result.add("max beyond settle + linger", 1000 * own[-1] if own else None, "ms",
               floor=1000 * max(raw) if raw else None, floor_label="raw inotify, max")  # fmt: skip
    result.add("files POSTed", len(ours), target=len(closes), better="higher")
    result.notes.append(
        "peers: watchfiles/inotifywait = close → event seen; naive = close → its POST "
        "arrived. Peers do not wait for files to settle (they would send partial files); "
        f"jetwatch's target includes settle {SETTLE_S} s + linger {LINGER_S} s"
    )
    result.notes.append(f"measured at {time.strftime('%H:%M:%S')}; p99 of few samples is the max")
