"""The IM emulator's run engine: QUEUED → RUNNING → FINISHED | FAILED, with real file copies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import structlog

from jetwatch.emulators.im.config import ImEmulatorConfig
from jetwatch.emulators.im.state import Run, RunStatus, im_date
from jetwatch.emulators.jet.faults import FaultInjector

log = structlog.get_logger(__name__)

TEMP_SUFFIX = ".imemu-part"


@dataclass(frozen=True, slots=True)
class WorkResult:
    """What a run's work did: files written (or read) and the first failure, if any."""

    outputs: list[str]
    error: str | None


def output_path(output_dir: Path, source: Path, source_root: Path | None) -> Path:
    """Where a file lands: its path under ``source_root`` if it is there, else its name."""
    if source_root is not None and source.is_relative_to(source_root):
        return output_dir / source.relative_to(source_root)
    return output_dir / source.name


def do_work(
    files: list[str], output_dir: Path | None, source_root: Path | None, failing: Collection[str]
) -> WorkResult:
    """Blocking: copy (or read) every file in order; stop at the first one that fails."""
    outputs: list[str] = []
    for name in files:
        source = Path(name)
        if not source.is_absolute():
            if source_root is None:
                return WorkResult(outputs, f"not an absolute path: {name}")
            source = source_root / name
        if name in failing:
            return WorkResult(outputs, f"injected failure: {name}")
        if not source.is_file():
            return WorkResult(outputs, f"file not found: {name}")
        try:
            outputs.append(_copy(source, output_dir, source_root))
        except OSError as exc:
            return WorkResult(outputs, f"cannot process {name}: {exc.strerror or exc}")
    return WorkResult(outputs, None)


def _copy(source: Path, output_dir: Path | None, source_root: Path | None) -> str:
    if output_dir is None:
        with source.open("rb") as fh:
            while fh.read(1024 * 1024):
                pass
        return str(source)
    target = output_path(output_dir, source, source_root)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Readers never see a part file: copy beside the target, then rename.
    tmp = target.parent / f".{uuid4().hex[:12]}{TEMP_SUFFIX}"
    try:
        shutil.copy2(source, tmp)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return str(target)


class RunEngine:
    """Moves each run through its statuses in a task; work runs on a bounded thread pool."""

    def __init__(self, config: ImEmulatorConfig, faults: FaultInjector) -> None:
        self._config = config
        self._faults = faults
        self._pool = ThreadPoolExecutor(config.max_active_runs, thread_name_prefix="imemu-run")
        self._released = asyncio.Event()
        self._released.set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def holding(self) -> bool:
        return not self._released.is_set()

    def hold(self, on: bool) -> None:
        """Keep new and queued runs QUEUED (True) until released (False)."""
        if on:
            self._released.clear()
        else:
            self._released.set()

    def start(self, run: Run) -> None:
        task = asyncio.create_task(self._drive(run), name=f"im-run-{run.run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)

    async def _drive(self, run: Run) -> None:
        await self._released.wait()
        await asyncio.sleep(self._config.run_step_s)
        if run.status != RunStatus.QUEUED:
            return  # the side door changed it (cancelled, or a status under test)
        run.status, run.started = RunStatus.RUNNING, im_date()
        await asyncio.sleep(self._config.run_step_s)
        run.files = parse_file_list(run.variables.get(self._config.files_variable, ""))
        failing = {f for f in run.files if self._faults.path_fails(f)}
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(
                self._pool,
                do_work,
                run.files,
                self._config.output_dir,
                self._config.source_root,
                failing,
            )
        except Exception:
            log.exception("im_run_crashed", run_id=run.run_id)
            result = WorkResult([], "internal emulator error")
        if run.status != RunStatus.RUNNING:
            return
        run.outputs = result.outputs
        run.error_message = result.error
        run.status = RunStatus.FAILED if result.error else RunStatus.FINISHED
        run.finished = im_date()
        log.info("im_run_finished", run_id=run.run_id, status=run.status, files=len(run.files))


def parse_file_list(value: str) -> list[str]:
    """Paths from a ``files_json`` or ``files_lines`` value (a JSON array, else one per line)."""
    text = value.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            items = None
        if isinstance(items, list) and all(isinstance(i, str) for i in items):
            return [i for i in items if i]
    return [line for line in value.splitlines() if line.strip()]
