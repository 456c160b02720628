"""Helpers for end-to-end pipeline tests: the daemon in-process or as a subprocess, and checks.

Everything is real: the emulator over HTTP, a SQLite ledger and folders in ``tmp_path``.
The checks read what the emulator received (``GET /_emulator/deliveries``) and what
arrived at the destination, byte for byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from jetwatch.config import (
    DaemonSettings,
    FolderSettings,
    HttpSettings,
    JetSettings,
    LedgerSettings,
    LogSettings,
    Settings,
)
from jetwatch.daemon import Daemon
from jetwatch.emulator import EmulatorServer
from jetwatch.ledger import FileKey, FileState
from jetwatch.ledger_sqlite import SqliteLedger
from tests.emulator_fixtures import ADMIN_ID, ADMIN_SECRET, wait_for

FAST_JET: dict[str, Any] = {
    "poll_min_seconds": 0.1,
    "poll_max_seconds": 0.5,
    "job_recheck_seconds": 0.5,
    "max_retries": 5,
}
FAST_FOLDER: dict[str, Any] = {
    "settle_seconds": 0.3,
    "batch_linger_seconds": 0.2,
    "max_wait_seconds": 1.0,
    "retry_backoff_seconds": 0.0,
    "scan_interval_seconds": 0.5,
}


def make_settings(
    base_url: str,
    src: Path,
    ledger_path: Path,
    job: str,
    *,
    jet: dict[str, Any] | None = None,
    **folder: Any,
) -> Settings:
    """Settings for one folder with fast timings; ``folder`` overrides FolderSettings keys."""
    folder_args = {**FAST_FOLDER, "name": f"f-{src.parent.name}", **folder}
    return Settings(
        jet=JetSettings(
            base_url=base_url,
            client_id=ADMIN_ID,
            client_secret=SecretStr(ADMIN_SECRET),
            **{**FAST_JET, **(jet or {})},
        ),
        ledger=LedgerSettings(path=ledger_path),
        http=HttpSettings(listen="127.0.0.1:0"),
        log=LogSettings(level="warning"),
        daemon=DaemonSettings(shutdown_timeout_seconds=5.0),
        folders=[FolderSettings(path=src, job=job, **folder_args)],
    )


# Daemons running in this test: waits fail at once when one of them stopped on its own.
_LIVE: list[asyncio.Task[int]] = []


def check_alive() -> None:
    for task in _LIVE:
        if task.done():
            code = None if task.cancelled() or task.exception() else task.result()
            raise AssertionError(f"daemon stopped on its own (exit code {code})")


@contextlib.asynccontextmanager
async def running_daemon(
    settings: Settings, *, expect_code: int = 0, jetstream_module: Any = None
) -> AsyncIterator[Daemon]:
    """Run ``Daemon(settings).run()`` as a task until the block ends; check its exit code."""
    daemon = Daemon(settings, jetstream_module=jetstream_module)
    task = asyncio.create_task(daemon.run(), name="daemon-under-test")
    _LIVE.append(task)

    async def first_scans() -> bool | None:
        check_alive()
        intakes = list(getattr(daemon, "intakes", {}).values())
        done = len(intakes) == len(settings.folders)
        return True if done and all(i.health.first_scan_done for i in intakes) else None

    try:
        await wait_for(first_scans, timeout_s=15)
        yield daemon
    finally:
        _LIVE.remove(task)
        daemon.request_stop()
        code = await asyncio.wait_for(task, timeout=20)
    assert code == expect_code, f"daemon exit code {code}"


async def received(server: EmulatorServer) -> list[dict[str, Any]]:
    """Every delivery the emulator accepted, as ``GET /_emulator/deliveries`` lists them."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server.url}/_emulator/deliveries") as response,
    ):
        assert response.status == 200
        items: list[dict[str, Any]] = (await response.json())["items"]
        return items


async def set_faults(server: EmulatorServer, **faults: Any) -> None:
    """``POST /_emulator/faults``; no arguments clears every fault."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.url}/_emulator/faults", json=faults) as response,
    ):
        assert response.status == 200, await response.text()


async def emulator_stats(server: EmulatorServer) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server.url}/_emulator/stats") as response,
    ):
        stats: dict[str, Any] = await response.json()
        return stats


def path_counts(deliveries: Iterable[dict[str, Any]]) -> Counter[str]:
    """How many accepted deliveries named each ``relativePath``."""
    return Counter(o["relativePath"] for d in deliveries for o in d["objects"])


def duplicates(deliveries: Iterable[dict[str, Any]]) -> dict[str, int]:
    return {path: n for path, n in path_counts(deliveries).items() if n > 1}


def same_bytes(a: Path, b: Path) -> bool:
    try:
        return b.is_file() and a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def arrived(src: Path, dst: Path, relpaths: Iterable[str]) -> set[str]:
    """Relative paths whose destination copy equals the source byte for byte."""
    return {rel for rel in relpaths if same_bytes(src / rel, dst / rel)}


async def wait_arrived(
    src: Path, dst: Path, relpaths: Iterable[str], *, timeout_s: float = 30.0
) -> None:
    """Wait until every file is at the destination with the source's exact bytes."""
    wanted = set(relpaths)

    async def probe() -> bool | None:
        check_alive()
        missing = wanted - await asyncio.to_thread(arrived, src, dst, wanted)
        return True if not missing else None

    try:
        await wait_for(probe, timeout_s=timeout_s, interval_s=0.1)
    except AssertionError:
        missing = sorted(wanted - arrived(src, dst, wanted))
        raise AssertionError(f"{len(missing)} files never arrived: {missing[:10]}") from None


async def wait_true(
    predicate: Callable[[], bool], *, timeout_s: float = 15.0, what: str = "condition"
) -> None:
    """Wait until ``predicate()`` is true; fail naming ``what`` after ``timeout_s``."""

    async def probe() -> bool | None:
        check_alive()
        return True if predicate() else None

    try:
        await wait_for(probe, timeout_s=timeout_s, interval_s=0.05)
    except AssertionError:
        raise AssertionError(f"{what}: not within {timeout_s} s") from None


def states(daemon: Daemon, label: str | None = None) -> dict[str, int]:
    """File counts by state in the running daemon's ledger (all folders unless ``label``)."""
    totals: dict[str, int] = {}
    for per_state in daemon.ledger.counts(label).values():
        for state, n in per_state.items():
            totals[state] = totals.get(state, 0) + n
    return totals


def all_done(daemon: Daemon, count: int) -> bool:
    """``count`` files are DONE and nothing else is on its way."""
    s = states(daemon)
    busy = sum(s.get(k, 0) for k in ("STABLE", "BATCHED", "SUBMITTED", "TRANSFERRED"))
    return s.get(FileState.DONE, 0) >= count and busy == 0


def in_doubt_batch(ledger_path: Path, label: str, src: Path, job_id: str, names: list[str]) -> int:
    """Record ``names`` as one batch left SUBMITTING, as a crash right after the POST would."""
    now = time.time()
    keys = []
    for rel in names:
        st = os.stat(src / rel)
        keys.append(FileKey(rel, st.st_size, st.st_mtime_ns, st.st_ino))
    with SqliteLedger.open(ledger_path) as ledger:
        ids = ledger.add_stable(label, keys, now)
        batch_id = ledger.create_batch(label, ids, now)
        ledger.mark_submitting(batch_id, job_id, now)
    return batch_id


def write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def grow_file(path: Path, seconds: float) -> None:
    """Append random data to ``path`` every 0.1 s for ``seconds``, like a recorder writing it."""
    deadline = time.monotonic() + seconds
    with path.open("wb") as fh:
        while time.monotonic() < deadline:
            fh.write(os.urandom(16 * 1024))
            fh.flush()
            await asyncio.sleep(0.1)


async def wait_isolated(daemon: Daemon, failed_dir: Path, bad: str, good: int) -> None:
    """Wait until ``bad`` is FAILED and moved to ``failed_dir``, and ``good`` files are DONE."""
    await wait_true(
        lambda: states(daemon).get(FileState.FAILED, 0) == 1 and (failed_dir / bad).exists(),
        what="bad file given up and moved",
    )
    await wait_true(lambda: states(daemon).get(FileState.DONE, 0) == good, what="done")


# ---- the daemon as a real process -------------------------------------------------------


async def produce(src: Path, stop: asyncio.Event, names: list[str]) -> None:
    """Drop a file every 40 ms into a few subdirectories until ``stop``."""
    rng = random.Random(1)
    i = 0
    while not stop.is_set():
        rel = f"cam{i % 3}/clip-{i:04d}.bin"
        write_file(src / rel, rng.randbytes(rng.randint(100, 20_000)))
        names.append(rel)
        i += 1
        await asyncio.sleep(0.04)


def ledger_done(ledger: Path, count: int) -> bool:
    """Read-only look at the ledger of the running process: ``count`` files DONE, none busy."""
    try:
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=5) as conn:
            rows = dict(conn.execute("SELECT state, count(*) FROM files GROUP BY state"))
    except sqlite3.Error:
        return False
    busy = sum(rows.get(s, 0) for s in ("STABLE", "BATCHED", "SUBMITTED", "TRANSFERRED"))
    return bool(rows.get("DONE", 0) == count and busy == 0)


def write_config(
    path: Path, base_url: str, src: Path, ledger: Path, job: str, **folder: Any
) -> Path:
    """A TOML config for ``jetwatch run`` with fast timings."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    jet = {
        "base_url": base_url,
        "client_id": ADMIN_ID,
        "client_secret": ADMIN_SECRET,
        **FAST_JET,
    }
    folder_keys = {**FAST_FOLDER, "path": str(src), "job": job, **folder}
    lines = ["[jet]", *(f"{k} = {value(v)}" for k, v in jet.items())]
    lines += ["[ledger]", f"path = {value(str(ledger))}"]
    lines += ["[http]", 'listen = "127.0.0.1:0"']
    lines += ["[log]", 'level = "info"', 'format = "json"']
    lines += ["[daemon]", "shutdown_timeout_seconds = 5.0"]
    lines += ["[[folders]]", *(f"{k} = {value(v)}" for k, v in folder_keys.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class DaemonProcess:
    """``python -m jetwatch run --config F`` as a child process, its output in a file."""

    config: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JETWATCH_")}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jetwatch", "run", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM and wait; the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


async def kill_repeatedly(proc: DaemonProcess, kills: int, rng: random.Random) -> None:
    """Start the daemon and SIGKILL it ``kills`` times at random moments (~1 s is start-up)."""
    for _ in range(kills):
        proc.start()
        await asyncio.sleep(rng.uniform(0.6, 3.0))
        assert proc.proc is not None
        assert proc.proc.poll() is None, proc.output()[-3000:]
        proc.kill9()
        await asyncio.sleep(rng.uniform(0.0, 0.4))  # files keep arriving meanwhile


async def wait_ledger_done(ledger: Path, count: int, timeout_s: float = 20.0) -> None:
    """Wait until the running process's ledger shows ``count`` files DONE and none busy."""
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(ledger_done, ledger, count):
        assert time.monotonic() < deadline, "ledger never showed every file DONE"
        await asyncio.sleep(0.1)


@pytest.fixture
def daemon_processes() -> Iterable[list[DaemonProcess]]:
    """Collects DaemonProcess objects; any still running at the end is killed."""
    procs: list[DaemonProcess] = []
    yield procs
    for p in procs:
        if p.proc is not None and p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait(timeout=10)
