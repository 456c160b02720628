"""Floors: the raw cost of the same work, measured in the same run on the same files.

A floor is what the work costs without jetwatch: no daemon, no event loop, no ledger API,
one thread doing just that. Each runs in a fresh subprocess (``python -m
bench.scenarios._floors KIND ROOT ...``) so that its CPU and memory are its own, as the
daemon's are, and prints one JSON line:

- ``walk``: ``os.scandir`` over the tree and ``stat`` of every regular file (the raw
  Python stat loop).
- ``burst``: the files of a burst (every file under ROOT): ``os.stat`` each one twice (the
  settle rule needs two looks), insert their rows into a fresh SQLite table shaped like the
  ledger's ``files`` table (same columns and indexes; WAL, synchronous=FULL, ``executemany``
  with a commit per 1,000 rows: each batch must be durable before its POST), and build the
  POST bodies (JSON of 1,000 objects each, as the Jet API takes them). Wall and CPU per part.
- ``memory``: import what the daemon imports, then keep the fingerprint (a hash of
  relpath, size, mtime, inode) of every file under ROOT in a set, which is what the intake
  keeps in memory; VmRSS after the imports and after the set.

``find DIR -printf '%s %T@\\n'`` is timed from the bench process (``find_floor``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.scenarios._harness import REPO

BATCH = 1000
# The ledger's files table (jetwatch/ledger/migrations.py), written out: the floor does not
# run product code.
FILES_DDL = (
    """CREATE TABLE files (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        folder TEXT NOT NULL,
        relpath TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        state TEXT NOT NULL,
        batch_id INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        stable_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        error TEXT,
        action_done INTEGER NOT NULL DEFAULT 0,
        action_error TEXT)""",
    "CREATE UNIQUE INDEX files_by_key ON files(folder, relpath, size, mtime_ns, inode)",
    "CREATE INDEX files_by_folder_state ON files(folder, state, stable_at, id)",
    "CREATE INDEX files_by_state ON files(state, action_done, updated_at)",
    "CREATE INDEX files_by_batch ON files(batch_id) WHERE batch_id IS NOT NULL",
)


# -- in the subprocess -----------------------------------------------------------------------


def walk(root: str) -> list[tuple[str, int, int, int]]:
    """(relpath, size, mtime_ns, inode) of every regular file: scandir and stat each."""
    out: list[tuple[str, int, int, int]] = []
    stack = [(root, "")]
    while stack:
        path, rel = stack.pop()
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, rel + entry.name + "/"))
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    out.append((rel + entry.name, st.st_size, st.st_mtime_ns, st.st_ino))
    return out


def timed(fn: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
    }


def stat_twice(root: str, rels: list[str]) -> None:
    paths = [os.path.join(root, rel) for rel in rels]
    for _ in range(2):
        for path in paths:
            os.stat(path)


def insert_rows(db: str, rows: list[tuple[str, int, int, int]]) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        for ddl in FILES_DDL:
            conn.execute(ddl)
        now = time.time()
        for start in range(0, len(rows), BATCH):
            conn.execute("BEGIN IMMEDIATE")
            chunk = rows[start : start + BATCH]
            conn.executemany(
                "INSERT OR IGNORE INTO files (folder, relpath, size, mtime_ns, inode, state, "
                "stable_at, updated_at) VALUES ('bench', ?, ?, ?, ?, 'STABLE', ?, ?)",
                ((rel, size, mtime, ino, now, now) for rel, size, mtime, ino in chunk),
            )
            conn.execute("COMMIT")
    finally:
        conn.close()


def build_bodies(rows: list[tuple[str, int, int, int]]) -> int:
    total = 0
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        objects = [{"relativePath": "/" + r[0], "sizeInBytes": r[1]} for r in chunk]
        total += len(json.dumps({"objects": objects}).encode())
    return total


def burst(root: str, db: str) -> dict[str, Any]:
    rows = walk(root)  # the list of files is given, not timed: the daemon gets it from events
    rels = [r[0] for r in rows]
    parts: dict[str, dict[str, float]] = {}
    _, parts["stat twice"] = timed(lambda: stat_twice(root, rels))
    _, parts["sqlite insert"] = timed(lambda: insert_rows(db, rows))
    body_bytes, parts["POST bodies"] = timed(lambda: build_bodies(rows))
    total = {k: sum(p[k] for p in parts.values()) for k in ("wall_s", "cpu_s")}
    return {"files": len(rows), "parts": parts, **total, "body_bytes": body_bytes}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def memory(root: str) -> dict[str, Any]:
    import jetwatch.app.daemon  # noqa: F401  what the daemon process imports

    gc.collect()
    baseline = rss_mb()
    known = {hash(row) for row in walk(root)}
    gc.collect()
    return {"files": len(known), "baseline_mb": baseline, "rss_mb": rss_mb()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["walk", "burst", "memory"])
    parser.add_argument("root")
    parser.add_argument("--db", default="")
    args = parser.parse_args()
    root = os.path.abspath(args.root)
    if args.kind == "walk":
        rows, took = timed(lambda: walk(root))
        data: dict[str, Any] = {"files": len(rows), **took}
    elif args.kind == "burst":
        data = burst(root, args.db)
    else:
        data = memory(root)
    print(json.dumps(data), flush=True)
    return 0


# -- in the bench process --------------------------------------------------------------------


async def _child(*args: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.scenarios._floors", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = await asyncio.to_thread(
        subprocess.run, cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"floor {args[0]} failed: {done.stderr.strip()[-500:]}")
    data: dict[str, Any] = json.loads(done.stdout)
    return data


async def walk_floor(root: Path) -> dict[str, Any]:
    """The raw Python stat loop over ``root``: files, wall_s, cpu_s."""
    return await _child("walk", str(root))


async def burst_floor(root: Path, db: Path) -> dict[str, Any]:
    """Stat twice + SQLite insert + POST bodies for every file under ``root``."""
    db.unlink(missing_ok=True)
    try:
        return await _child("burst", str(root), "--db", str(db))
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)


async def memory_floor(root: Path) -> dict[str, Any]:
    """VmRSS of a process with the daemon's imports and a fingerprint set of ``root``."""
    return await _child("memory", str(root))


def _find(root: Path) -> dict[str, float]:
    cmd = ["find", str(root), "-printf", "%s %T@\\n"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, _status, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0  # reaped by wait4
    wall = time.perf_counter() - started
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime}


async def find_floor(root: Path, runs: int = 2) -> dict[str, float]:
    """``find DIR -printf '%s %T@\\n'`` over the tree (output discarded): the fastest of
    ``runs`` (the first also warms the dentry and inode caches, as a start-up finds them
    after a restart on a running host)."""
    best: dict[str, float] | None = None
    for _ in range(runs):
        got = await asyncio.to_thread(_find, root)
        if best is None or got["wall_s"] < best["wall_s"]:
            best = got
    assert best is not None
    return best


if __name__ == "__main__":
    sys.exit(main())
