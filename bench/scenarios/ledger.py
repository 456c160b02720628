"""Ledger throughput: file-state transitions per second in batched transactions, per step."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from bench.scenarios._harness import Context, Result
from jetwatch.domain.states import FileKey
from jetwatch.ledger.sqlite import SqliteLedger

NAME = "ledger"
BATCH_FILES = 1000
ADD_CHUNK = 10_000
ONE_BY_ONE = 300
QUEUE_LIMIT = 20 * BATCH_FILES  # what one deliverer round could batch
T = TypeVar("T")


def keys(n: int, offset: int = 0) -> list[FileKey]:
    return [
        FileKey(f"d{i // 1000:04d}/f{i:07d}.dat", 100, 1_700_000_000_000_000_000 + i, i + 1)
        for i in range(offset, offset + n)
    ]


async def timed(fn: Callable[[], Awaitable[T]]) -> tuple[T, float]:
    started = time.perf_counter()
    value = await fn()
    return value, time.perf_counter() - started


async def pipeline(ledger: SqliteLedger, n: int) -> dict[str, float]:
    """Every file STABLE → BATCHED → SUBMITTED → TRANSFERRED → DONE; seconds per step."""
    spent = dict.fromkeys(("add_stable", "create_batch", "submit", "complete", "mark_done"), 0.0)
    now = time.time()
    all_keys = keys(n)
    ids: list[int] = []
    for start in range(0, n, ADD_CHUNK):
        chunk = all_keys[start : start + ADD_CHUNK]
        new, took = await timed(lambda c=chunk: ledger.add_stable("bench", c, now))
        ids += new
        spent["add_stable"] += took
    spent["stable_queue"] = (await timed(lambda: ledger.stable_queue("bench", QUEUE_LIMIT)))[1]
    for start in range(0, len(ids), BATCH_FILES):
        chunk = ids[start : start + BATCH_FILES]
        batch, took = await timed(lambda c=chunk: ledger.create_batch("bench", c, now))
        spent["create_batch"] += took
        started = time.perf_counter()
        await ledger.mark_submitting(batch, "job", now)
        await ledger.mark_submitted(batch, f"delivery-{batch}", now)
        spent["submit"] += time.perf_counter() - started
        spent["complete"] += (await timed(lambda b=batch: ledger.complete_batch(b, now)))[1]
        spent["mark_done"] += (await timed(lambda c=chunk: ledger.mark_done(c, now)))[1]
    return spent


async def one_by_one(ledger: SqliteLedger, n: int) -> float:
    """add_stable with one file per call (one transaction, one fsync each); seconds."""
    extra = keys(n, offset=10_000_000)
    started = time.perf_counter()
    for key in extra:
        await ledger.add_stable("bench", [key], time.time())
    return time.perf_counter() - started


async def fingerprints(ledger: SqliteLedger) -> tuple[int, float, float]:
    """known_fingerprints as the intake loads it at start: (rows, seconds, MB allocated)."""
    tracemalloc.start()
    started = time.perf_counter()
    known = await ledger.known_fingerprints("bench")
    took = time.perf_counter() - started
    size_mb = tracemalloc.get_traced_memory()[0] / 1e6
    tracemalloc.stop()
    return len(known), took, size_mb


async def measure(path: Path, n: int) -> tuple[dict[str, float], float, tuple[int, float, float]]:
    async with await SqliteLedger.open(path) as ledger:
        spent = await pipeline(ledger, n)
        single_s = await one_by_one(ledger, ONE_BY_ONE)
        finger = await fingerprints(ledger)
    return spent, single_s, finger


async def run(ctx: Context) -> Result:
    n = ctx.size(20_000, 200_000)
    result = Result(NAME, {"files": n, "batch_files": BATCH_FILES, "add_chunk": ADD_CHUNK})
    path = ctx.work / "ledger" / "ledger.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    spent, single_s, (rows, finger_s, finger_mb) = await measure(path, n)
    steps = ("add_stable", "create_batch", "submit", "complete", "mark_done")
    total_s = sum(spent[s] for s in steps)
    # submit is two transitions of the batch but one of each file (BATCHED → SUBMITTED).
    result.add(
        "file-state transitions/s, batched (5 per file)",
        5 * n / total_s,
        "/s",
        target=20_000,
        better="higher",
        peers={"1 file per txn": ONE_BY_ONE / single_s},
        note="peer column: add_stable called once per file (one transaction, one fsync each)",
    )
    for step in steps:
        result.add(f"{step} files/s", n / spent[step], "/s", better="higher")
    result.add(
        f"stable_queue(limit {QUEUE_LIMIT:,}) with {n:,} STABLE rows",
        spent["stable_queue"] * 1000,
        "ms",
        note="the slim (id, size, stable_at) query one batching round needs",
    )
    result.add(f"known_fingerprints of {rows:,} rows", finger_s * 1000, "ms")
    result.add(f"known_fingerprints memory ({rows:,} rows)", finger_mb, "MB")
    result.notes.append(
        f"ledger at synchronous=FULL (WAL) on local disk; {n:,} files in batches of "
        f"{BATCH_FILES}; total {total_s:.2f} s for {5 * n:,} transitions"
    )
    return result
