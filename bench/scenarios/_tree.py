"""The big tree (startup, idle, scan-only): N empty files, all DONE in a ledger built once.

Creating files is kernel-bound (a few thousand a second on a busy VM disk), so two threads
create directories while the ledger is filled with the ones already made. With
``--cache DIR`` the tree and a pristine copy of its ledger are kept between runs.
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.scenarios._harness import Context, say, stat_keys
from jetwatch.domain.states import FileKey
from jetwatch.ledger.migrations import SCHEMA_VERSION
from jetwatch.ledger.sqlite import SqliteLedger

FILES_PER_DIR = 1000
BATCH_FILES = 1000
ADD_CHUNK = 10_000
CREATORS = 2
NEW_DIR = "new"  # where scenarios drop new files; removed before the tree is reused
QUICK_FILES = 20_000  # built in seconds even on a churned disk: --quick stays under a minute


@dataclass(frozen=True, slots=True)
class BigTree:
    """A folder of ``files`` files and a ledger in which every one of them is DONE."""

    base: Path
    root: Path
    ledger: Path
    files: int
    dirs: int
    build_s: float
    reused: bool


def create_dirs(root: Path, n_files: int, dirs: range, done: queue.Queue[int | None]) -> None:
    """Create the given directories' empty files; put each finished directory on ``done``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        for d in dirs:
            path = os.path.join(os.fspath(root), f"d{d:04d}")
            os.makedirs(path, exist_ok=True)
            for i in range(min(FILES_PER_DIR, n_files - d * FILES_PER_DIR)):
                os.close(os.open(os.path.join(path, f"f{i:04d}.dat"), flags, 0o644))
            done.put(d)
    finally:
        done.put(None)


class Populator:
    """Takes files through the ledger's real transitions up to DONE, 1000 per batch.

    Uses only the ledger API (add_stable, create_batch, mark_submitting, mark_submitted,
    complete_batch, mark_done), as the daemon would have.
    """

    def __init__(self, ledger: SqliteLedger, folder: str = "bench") -> None:
        self.ledger = ledger
        self.folder = folder
        self.keys: list[FileKey] = []
        self.total = 0

    async def add(self, keys: list[FileKey]) -> None:
        self.keys += keys
        if len(self.keys) >= ADD_CHUNK:
            await self.flush()

    async def flush(self) -> None:
        ledger, now = self.ledger, time.time()
        ids = await ledger.add_stable(self.folder, self.keys, now)
        self.keys = []
        for start in range(0, len(ids), BATCH_FILES):
            batch_ids = ids[start : start + BATCH_FILES]
            batch = await ledger.create_batch(self.folder, batch_ids, now)
            await ledger.mark_submitting(batch, "bench-job", now)
            await ledger.mark_submitted(batch, f"bench-delivery-{batch}", now)
            await ledger.complete_batch(batch, now)
            await ledger.mark_done(batch_ids, now)
        self.total += len(ids)


def build(root: Path, ledger_path: Path, n_files: int) -> tuple[int, int]:
    """Create the tree and its ledger; returns (directories, files in the ledger)."""
    n_dirs = max(1, -(-n_files // FILES_PER_DIR))
    done: queue.Queue[int | None] = queue.Queue()
    creators = [
        threading.Thread(target=create_dirs, args=(root, n_files, range(k, n_dirs, CREATORS), done))
        for k in range(CREATORS)
    ]
    for thread in creators:
        thread.start()

    async def populate() -> int:
        finished = 0
        async with await SqliteLedger.open(ledger_path) as ledger:
            populator = Populator(ledger)
            while finished < CREATORS:
                d = await asyncio.to_thread(done.get)
                if d is None:
                    finished += 1
                    continue
                dir_keys = stat_keys(root / f"d{d:04d}")
                await populator.add([FileKey(f"d{d:04d}/{rel}", *rest) for rel, *rest in dir_keys])
            if populator.keys:
                await populator.flush()
        return populator.total

    total = asyncio.run(populate())
    for thread in creators:
        thread.join()
    return n_dirs, total


def upgrade(pristine: Path, ctx: Context) -> None:
    """Bring a cached ledger to the current schema once, so no run measures a migration.

    The time it took (the one-off cost of upgrading a ledger of that size) is kept in
    ``ctx.cache["migration"]`` for the startup scenario to report.
    """
    raw = sqlite3.connect(pristine)
    try:
        version = int(raw.execute("PRAGMA user_version").fetchone()[0])
    finally:
        raw.close()
    if version >= SCHEMA_VERSION:
        return
    started = time.monotonic()
    asyncio.run(_open_once(pristine))
    took = time.monotonic() - started
    ctx.cache["migration"] = (version, SCHEMA_VERSION, took)
    say(f"cached ledger migrated from schema {version} to {SCHEMA_VERSION} in {took:.1f} s")


async def _open_once(path: Path) -> None:
    """Open (and so migrate) a ledger, then close it."""
    await (await SqliteLedger.open(path)).aclose()


def build_in_background(ctx: Context) -> None:
    """Start building the big tree now, while a scenario that mostly waits runs.

    Only ``latency`` runs beside it (its figures are settle timers, not CPU); the runner
    awaits ``wait_for_background`` before any other scenario.
    """
    if "big_tree" not in ctx.cache and "big_tree_task" not in ctx.cache:
        ctx.cache["big_tree_task"] = asyncio.create_task(_make_big_tree(ctx), name="big-tree")


async def wait_for_background(ctx: Context) -> None:
    task = ctx.cache.pop("big_tree_task", None)
    if isinstance(task, asyncio.Task):
        if not task.done():
            say("waiting for the big tree being built in the background")
        ctx.cache["big_tree"] = await task


async def big_tree(ctx: Context) -> BigTree:
    """Build the tree and its ledger once per run (or once per ``--cache``); reuse after."""
    await wait_for_background(ctx)
    cached = ctx.cache.get("big_tree")
    if isinstance(cached, BigTree) and cached.files == ctx.size(QUICK_FILES, 1_000_000):
        return cached
    tree = await _make_big_tree(ctx)
    ctx.cache["big_tree"] = tree
    return tree


async def _make_big_tree(ctx: Context) -> BigTree:
    n_files = ctx.size(QUICK_FILES, 1_000_000)
    home = (ctx.cache_dir or ctx.work) / f"big-{n_files}"
    root, pristine, stamp = home / "in", home / "ledger.pristine.db", home / "complete"
    work_ledger = ctx.work / "big" / "ledger.db"
    work_ledger.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    reused = stamp.exists()
    if reused:
        say(f"reusing the cached tree of {n_files:,} files in {home}")
        shutil.rmtree(root / NEW_DIR, ignore_errors=True)
        n_dirs, total = (int(x) for x in stamp.read_text().split())
        await asyncio.to_thread(upgrade, pristine, ctx)
    else:
        shutil.rmtree(home, ignore_errors=True)
        root.mkdir(parents=True)
        say(f"creating {n_files:,} files and taking them to DONE in a ledger")
        n_dirs, total = await asyncio.to_thread(build, root, pristine, n_files)
        stamp.write_text(f"{n_dirs} {total}\n")
    await asyncio.to_thread(shutil.copyfile, pristine, work_ledger)
    build_s = time.monotonic() - started
    say(f"big tree ready in {build_s:.1f} s")
    return BigTree(ctx.work / "big", root, work_ledger, total, n_dirs, build_s, reused)
