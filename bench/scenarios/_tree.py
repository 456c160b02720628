"""Trees of N empty files, all DONE in a ledger built once (startup, idle, scaling, ...).

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
from dataclasses import dataclass, field
from pathlib import Path

from bench.scenarios._harness import Context, say, stat_keys
from jetwatch.domain.states import FileKey
from jetwatch.ledger.migrations import SCHEMA_VERSION
from jetwatch.ledger.sqlite import SqliteLedger

FILES_PER_DIR = 1000
BATCH_FILES = 1000
ADD_CHUNK = 10_000
CREATORS = 2
NEW_DIR = "new"  # where scenarios drop new files; removed (``tidy``) before a tree is reused
QUICK_FILES = 20_000  # built in seconds even on a churned disk: --quick stays quick
FULL_FILES = 1_000_000


@dataclass(frozen=True, slots=True)
class BigTree:
    """A tree of ``files`` files and a ledger in which every one of them is DONE.

    ``folders`` maps each folder name to its path below ``root`` ("" when the root is the
    one folder, named "bench").
    """

    base: Path
    root: Path
    ledger: Path
    files: int
    dirs: int
    build_s: float
    reused: bool
    folders: dict[str, str] = field(default_factory=lambda: {"bench": ""})


@dataclass(frozen=True, slots=True)
class DirJob:
    """One directory of the tree: its folder, its path below the root and the folder."""

    folder: str
    below_root: str
    below_folder: str
    files: int


def layout(n_files: int, n_folders: int = 0) -> list[DirJob]:
    """The directories: ``n_folders`` = 0 is one folder "bench" at the root (d0000, d0001,
    ...); otherwise folders m000, m001, ... below the root, ``n_files`` each."""
    if not n_folders:
        n_dirs = max(1, -(-n_files // FILES_PER_DIR))
        sizes = [min(FILES_PER_DIR, n_files - d * FILES_PER_DIR) for d in range(n_dirs)]
        return [DirJob("bench", f"d{d:04d}", f"d{d:04d}", k) for d, k in enumerate(sizes)]
    jobs = []
    per_folder = max(1, -(-n_files // FILES_PER_DIR))
    for m in range(n_folders):
        for d in range(per_folder):
            k = min(FILES_PER_DIR, n_files - d * FILES_PER_DIR)
            jobs.append(DirJob(f"m{m:03d}", f"m{m:03d}/d{d:04d}", f"d{d:04d}", k))
    return jobs


def create_dirs(root: Path, jobs: list[DirJob], done: queue.Queue[int | None], mine: range) -> None:
    """Create the given directories' empty files; put each finished one's index on ``done``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        for index in mine:
            job = jobs[index]
            path = os.path.join(os.fspath(root), job.below_root)
            os.makedirs(path, exist_ok=True)
            for i in range(job.files):
                os.close(os.open(os.path.join(path, f"f{i:04d}.dat"), flags, 0o644))
            done.put(index)
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


def build(root: Path, ledger_path: Path, jobs: list[DirJob]) -> int:
    """Create the tree and its ledger; returns the files in the ledger."""
    done: queue.Queue[int | None] = queue.Queue()
    creators = [
        threading.Thread(target=create_dirs, args=(root, jobs, done, range(k, len(jobs), CREATORS)))
        for k in range(CREATORS)
    ]
    for thread in creators:
        thread.start()

    async def populate() -> int:
        finished = 0
        async with await SqliteLedger.open(ledger_path) as ledger:
            populators: dict[str, Populator] = {}
            while finished < CREATORS:
                index = await asyncio.to_thread(done.get)
                if index is None:
                    finished += 1
                    continue
                job = jobs[index]
                populator = populators.setdefault(job.folder, Populator(ledger, job.folder))
                dir_keys = stat_keys(root / job.below_root)
                prefix = job.below_folder + "/"
                await populator.add([FileKey(prefix + rel, *rest) for rel, *rest in dir_keys])
            for populator in populators.values():
                if populator.keys:
                    await populator.flush()
        return sum(p.total for p in populators.values())

    total = asyncio.run(populate())
    for thread in creators:
        thread.join()
    return total


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
    n_files = ctx.size(QUICK_FILES, FULL_FILES)
    if f"tree:{n_files}:0" not in ctx.cache and "big_tree_task" not in ctx.cache:
        ctx.cache["big_tree_task"] = asyncio.create_task(tree(ctx, n_files), name="big-tree")


async def wait_for_background(ctx: Context) -> None:
    task = ctx.cache.pop("big_tree_task", None)
    if isinstance(task, asyncio.Task):
        if not task.done():
            say("waiting for the big tree being built in the background")
        await task


async def big_tree(ctx: Context) -> BigTree:
    """The big tree (20,000 or 1,000,000 files): startup, idle, scan_only, scaling."""
    await wait_for_background(ctx)
    return await tree(ctx, ctx.size(QUICK_FILES, FULL_FILES))


async def tree(ctx: Context, n_files: int, n_folders: int = 0) -> BigTree:
    """A tree of ``n_files`` files (per folder, with ``n_folders``), all DONE in a ledger:
    built once per run (or once per ``--cache``), reused after."""
    key = f"tree:{n_files}:{n_folders}"
    cached = ctx.cache.get(key)
    if isinstance(cached, BigTree):
        return cached
    built = await _make_tree(ctx, n_files, n_folders)
    ctx.cache[key] = built
    return built


def tidy(root: Path, jobs: list[DirJob]) -> None:
    """Remove what scenarios added to a tree (new files, bursts, staging): anything that is
    not one of its directories or their files, so that a reused tree is the one built."""
    keep_dirs = {job.below_root for job in jobs}
    keep_parents = {job.below_root.rpartition("/")[0] for job in jobs} - {""}
    for parent in ["", *sorted(keep_parents)]:
        with os.scandir(root / parent) as entries:
            for entry in entries:
                rel = f"{parent}/{entry.name}" if parent else entry.name
                if rel in keep_dirs or rel in keep_parents:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)


async def _make_tree(ctx: Context, n_files: int, n_folders: int) -> BigTree:
    name = f"big-{n_files}" if not n_folders else f"folders-{n_folders}x{n_files}"
    home = (ctx.cache_dir or ctx.work) / name
    root, pristine, stamp = home / "in", home / "ledger.pristine.db", home / "complete"
    base = ctx.work / f"tree-{name}"
    work_ledger = base / "ledger.db"
    base.mkdir(parents=True, exist_ok=True)
    jobs = layout(n_files, n_folders)
    started = time.monotonic()
    reused = stamp.exists()
    total = n_files * max(1, n_folders)
    if reused:
        say(f"reusing the cached tree of {total:,} files in {home}")
        await asyncio.to_thread(tidy, root, jobs)
        total = int(stamp.read_text().split()[1])
        await asyncio.to_thread(upgrade, pristine, ctx)
    else:
        shutil.rmtree(home, ignore_errors=True)
        root.mkdir(parents=True)
        say(f"creating {total:,} files and taking them to DONE in a ledger")
        total = await asyncio.to_thread(build, root, pristine, jobs)
        stamp.write_text(f"{len(jobs)} {total}\n")
    await asyncio.to_thread(shutil.copyfile, pristine, work_ledger)
    build_s = time.monotonic() - started
    say(f"tree {name} ready in {build_s:.1f} s")
    folders = {"bench": ""} if not n_folders else {j.folder: j.folder for j in jobs}
    return BigTree(base, root, work_ledger, total, len(jobs), build_s, reused, folders)
