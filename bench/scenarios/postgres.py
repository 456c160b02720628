"""The PostgreSQL ledger: transitions/s, a burst against SQLite in the same run, takeover.

A real PostgreSQL server (the machine's, ``initdb`` + ``pg_ctl`` in the work dir, as the
tests start it) on 127.0.0.1. Three figures:

- file-state transitions/s in batched transactions (1,000 files a batch), PostgreSQL and,
  in the same run, SQLite;
- a burst of N files in 100 directories: last file written → every file POSTed, one daemon
  on a PostgreSQL ledger, then one on SQLite (same emulator, same settings);
- takeover after ``kill -9``: two daemons on one folder (``lease_seconds = 15``); the owner
  is killed, then the time until the other holds the lease and until a file written at
  the kill is POSTed.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from pathlib import Path

from bench.scenarios._daemon import DaemonProcess, event_time, write_config
from bench.scenarios._emulator import BenchEmulator
from bench.scenarios._harness import Context, Result, burst_paths, say, wait_until, write_files
from jetwatch.domain.states import FileKey
from jetwatch.domain.store import LedgerStore
from jetwatch.ledger.postgres.ledger import PostgresLedger
from jetwatch.ledger.sqlite import SqliteLedger
from tests.fixtures.postgres import PASSWORD, PgCluster, server_bin

NAME = "postgres"
BATCH_FILES = 1000
ADD_CHUNK = 10_000
LEASE_S = 15.0
FOLDER = "bench"


def keys(n: int) -> list[FileKey]:
    return [
        FileKey(f"d{i // 1000:04d}/f{i:07d}.dat", 100, 1_700_000_000 + i, i + 1) for i in range(n)
    ]


async def transitions_per_s(ledger: LedgerStore, n: int) -> float:
    """STABLE → BATCHED → SUBMITTED → TRANSFERRED → DONE for n files: transitions per second."""
    now = time.time()
    all_keys = keys(n)
    started = time.perf_counter()
    ids: list[int] = []
    for start in range(0, n, ADD_CHUNK):
        ids += await ledger.add_stable(FOLDER, all_keys[start : start + ADD_CHUNK], now)
    for start in range(0, len(ids), BATCH_FILES):
        chunk = ids[start : start + BATCH_FILES]
        batch = await ledger.create_batch(FOLDER, chunk, now)
        await ledger.mark_submitting(batch, "job", now)
        await ledger.mark_submitted(batch, f"delivery-{batch}", now)
        await ledger.complete_batch(batch, now)
        await ledger.mark_done(chunk, now)
    return 5 * n / (time.perf_counter() - started)


def pg_config(path: Path, url: str, secret: Path) -> None:
    """Point a bench config's [ledger] at PostgreSQL (url, password file, lease)."""
    text = path.read_text(encoding="utf-8")
    ledger = f'[ledger]\nurl = "{url}"\npassword_file = "{secret}"\nlease_seconds = {LEASE_S}\n'
    path.write_text(re.sub(r"\[ledger\]\npath = [^\n]*\n", ledger, text), encoding="utf-8")


async def burst(
    ctx: Context, emulator: BenchEmulator, n: int, url: str | None, secret: Path
) -> float | None:
    """Seconds from the last file written to every file POSTed; None on a timeout."""
    kind = "postgres" if url else "sqlite"
    folder = ctx.work / f"pg-burst-{kind}"
    folder.mkdir(parents=True)
    job = await emulator.job(folder, f"pg burst {kind}")
    ledger = ctx.work / f"pg-burst-{kind}.db"
    config = write_config(
        ctx.work / f"pg-burst-{kind}.toml", base_url=emulator.url, folder=folder, ledger=ledger,
        job=job,
    )  # fmt: skip
    if url:
        pg_config(config, url, secret)
    daemon = DaemonProcess(config, log_path=ctx.log_path(f"postgres-burst-{kind}"))
    daemon.start()
    try:
        if await daemon.wait_event("ready", 60) is None:
            return None
        since = len(emulator.recorder.posts)
        paths = burst_paths(n, 100)
        last = await asyncio.to_thread(write_files, folder, paths)
        wanted = {"/" + p for p in paths}

        def all_posted() -> bool:
            return len(emulator.recorder.first_post_of(job, wanted, since)) == len(wanted)

        if not await wait_until(all_posted, 300, 0.2):
            return None
        arrived = max(emulator.recorder.first_post_of(job, wanted, since).values())
        return arrived - last
    finally:
        await daemon.stop()


async def takeover(
    ctx: Context, emulator: BenchEmulator, url: str, secret: Path
) -> tuple[float | None, float | None]:
    """(kill → the other daemon holds the lease, kill → a file written at the kill is POSTed)."""
    folder = ctx.work / "pg-takeover"
    folder.mkdir(parents=True)
    job = await emulator.job(folder, "pg takeover")
    daemons = []
    for i in range(2):
        config = write_config(ctx.work / f"pg-takeover-{i}.toml", base_url=emulator.url,
                              folder=folder, ledger=ctx.work / "unused.db", job=job)  # fmt: skip
        pg_config(config, url, secret)
        daemons.append(DaemonProcess(config, log_path=ctx.log_path(f"postgres-takeover-{i}")))
    for daemon in daemons:
        daemon.start()
    try:
        if not await wait_until(lambda: any(d.find("folder_lease_acquired") for d in daemons), 60):
            return None, None
        owner = next(d for d in daemons if d.find("folder_lease_acquired"))
        other = next(d for d in daemons if d is not owner)
        await other.wait_event("ready", 60)
        since = len(emulator.recorder.posts)
        os.kill(owner.pid, signal.SIGKILL)
        killed = time.time()
        write_files(folder, ["after-kill.dat"])
        got = await other.wait_event("folder_lease_acquired", LEASE_S + 30)
        posted = await wait_until(
            lambda: bool(emulator.recorder.first_post_of(job, ["/after-kill.dat"], since)),
            LEASE_S + 30,
        )
        acquired_s = None if got is None else event_time(got) - killed
        post_s = None
        if posted:
            post_s = (
                emulator.recorder.first_post_of(job, ["/after-kill.dat"], since)["/after-kill.dat"]
                - killed
            )
        return acquired_s, post_s
    finally:
        for daemon in daemons:
            await daemon.stop()


async def run(ctx: Context) -> Result:
    result = Result(NAME, {"batch_files": BATCH_FILES, "lease_seconds": LEASE_S})
    bindir = server_bin()
    if bindir is None:
        result.status = "skipped: no PostgreSQL server binaries (initdb, pg_ctl)"
        return result
    cluster = await asyncio.to_thread(PgCluster, bindir)
    await asyncio.to_thread(cluster.start)
    secret = ctx.work / "pg-password"
    secret.write_text(PASSWORD, encoding="utf-8")
    try:
        n = ctx.size(20_000, 200_000)
        async with await PostgresLedger.open(cluster.new_database()) as pg:
            await pg.lease_round([FOLDER], 3600)
            pg_rate = await transitions_per_s(pg, n)
        async with await SqliteLedger.open(ctx.work / "pg-compare.db") as lite:
            lite_rate = await transitions_per_s(lite, n)
        result.add("file-state transitions/s, batched, PostgreSQL", pg_rate, "/s", target=20_000,
                   better="higher", peers={"SQLite": lite_rate})  # fmt: skip
        say(f"transitions/s: postgres {pg_rate:,.0f}, sqlite {lite_rate:,.0f}")
        files = ctx.size(10_000, 100_000)
        async with BenchEmulator(ctx.work) as emulator:
            name = cluster.new_database().rsplit("/", 1)[1]
            on_pg = await burst(ctx, emulator, files, cluster.url(name, password=False), secret)
            on_lite = await burst(ctx, emulator, files, None, secret)
            result.add(f"burst {files:,} files / 100 dirs: all POSTed after the last, PostgreSQL",
                       on_pg, "s", better="lower", peers={"SQLite": on_lite})  # fmt: skip
            name = cluster.new_database().rsplit("/", 1)[1]
            acquired_s, post_s = await takeover(
                ctx, emulator, cluster.url(name, password=False), secret
            )
        result.add("takeover after kill -9: the standby holds the lease", acquired_s, "s",
                   target=LEASE_S + 5, better="lower")  # fmt: skip
        result.add("takeover after kill -9: a file written at the kill is POSTed", post_s, "s",
                   target=LEASE_S + 5, better="lower")  # fmt: skip
        result.notes.append(
            f"PostgreSQL 15 on 127.0.0.1 (fsync off: the bench's server), {n:,} files for "
            f"transitions; lease_seconds {LEASE_S:g}"
        )
    finally:
        await asyncio.to_thread(cluster.destroy)
    return result
