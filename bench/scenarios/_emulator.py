"""The in-process emulator for benchmarks, recording when each delivery POST arrived."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.scenarios._harness import CLIENT_ID, CLIENT_SECRET
from jetwatch.emulators.jet import EmulatorConfig, EmulatorServer, bootstrap_manual_job
from jetwatch.emulators.jet import app as emulator_app
from jetwatch.emulators.jet.model import DeliveryState, TransferState
from jetwatch.emulators.jet.transfers import TransferEngine


@dataclass(frozen=True, slots=True)
class Post:
    """One ``POST /deliveries`` as the emulator received it."""

    t: float
    job_id: str
    paths: tuple[str, ...]


class Recorder:
    """Every POST the emulator received, in arrival order."""

    def __init__(self) -> None:
        self.posts: list[Post] = []

    def of(self, job_id: str, since: int = 0) -> list[Post]:
        return [p for p in self.posts[since:] if p.job_id == job_id]

    def first_post_of(self, job_id: str, paths: Iterable[str], since: int = 0) -> dict[str, float]:
        """Path → arrival time of the first POST that named it, for the given paths only."""
        wanted = set(paths)
        found: dict[str, float] = {}
        for post in self.of(job_id, since):
            for path in post.paths:
                if path in wanted and path not in found:
                    found[path] = post.t
        return found


class RecordingEngine(TransferEngine):
    """The emulator's copy engine, recording arrivals; with ``copy=False`` it copies nothing.

    Without copying, a delivery is COMPLETED at once with every object counted as
    transferred: copy speed is the emulator's business, and copying 100,000 files in the
    bench process would steal the CPU the daemon is measured on.
    """

    def __init__(self, *args: Any, recorder: Recorder, copy: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recorder = recorder
        self.copy = copy

    def submit(self, job: Any, objects: list[dict[str, Any]]) -> Any:
        arrived = time.time()
        delivery = super().submit(job, objects)
        paths = tuple(str(o.get("relativePath", "")) for o in objects)
        self.recorder.posts.append(Post(arrived, job.job_id, paths))
        return delivery

    def _start(self, delivery: Any) -> None:
        if self.copy:
            super()._start(delivery)
            return
        for transfer_id in delivery.transfer_ids:
            transfer = self._state.transfers[transfer_id]
            transfer.progress.transferred.count = len(transfer.objects)
            transfer.progress.transferred.bytes = sum(
                int(o.get("sizeInBytes") or 0) for o in transfer.objects
            )
            transfer.state = TransferState.COMPLETED
        delivery.state = DeliveryState.COMPLETED


class BenchEmulator:
    """The in-process emulator; ``recorder`` sees every delivery POST with its arrival time."""

    def __init__(self, work: Path, *, copy: bool = False) -> None:
        self.recorder = Recorder()
        self._work = work
        self._copy = copy
        self.server = EmulatorServer(EmulatorConfig(port=0, max_active_transfers=2))

    @property
    def url(self) -> str:
        return self.server.url

    async def __aenter__(self) -> BenchEmulator:
        original = emulator_app.TransferEngine
        emulator_app.TransferEngine = functools.partial(  # type: ignore[misc]
            RecordingEngine, recorder=self.recorder, copy=self._copy
        )
        try:
            await self.server.start()
        finally:
            emulator_app.TransferEngine = original  # type: ignore[misc]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop()

    async def job(self, source: Path, name: str) -> str:
        """A manual job whose source profile is ``source`` (destination: a scratch folder)."""
        dest = self._work / f"dest-{name.replace(' ', '-')}"
        dest.mkdir(parents=True, exist_ok=True)
        return await bootstrap_manual_job(self.url, CLIENT_ID, CLIENT_SECRET, source, dest, name)
