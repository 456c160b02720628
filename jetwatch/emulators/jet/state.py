"""The emulator's in-memory model, optionally persisted as one JSON file in ``--state-dir``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import structlog

from jetwatch.emulators.jet.model import (
    Delivery,
    Endpoint,
    Job,
    JsonDict,
    Profile,
    Progress,
    Transfer,
    TransferState,
    iso_now,
    new_id,
)
from jetwatch.errors import JetwatchError

log = structlog.get_logger(__name__)

STATE_FILE = "emulator-state.json"
FORMAT_VERSION = 1


class EmulatorStateError(JetwatchError, ValueError):
    """The state file in ``--state-dir`` cannot be read; it is never replaced silently."""


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so a crash leaves either the old or the new file, whole."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


class EmulatorState:
    """Every record the emulator knows; mutated only on the event loop."""

    def __init__(self, state_dir: Path | None = None, *, save_interval_s: float = 0.2) -> None:
        self.state_dir = state_dir
        self.account_id = new_id()
        self.service_id = new_id()
        self.endpoints: dict[str, Endpoint] = {}
        self.profiles: dict[str, Profile] = {}
        self.jobs: dict[str, Job] = {}
        self.deliveries: dict[str, Delivery] = {}  # every delivery ever received, in order
        self.transfers: dict[str, Transfer] = {}
        self._save_interval_s = save_interval_s
        self._dirty = asyncio.Event()
        self._write_lock = asyncio.Lock()

    @property
    def path(self) -> Path | None:
        return None if self.state_dir is None else self.state_dir / STATE_FILE

    # -- queries -------------------------------------------------------------------------

    def delivery_of(self, job_id: str, delivery_id: str) -> Delivery | None:
        """The delivery if it belongs to the (existing) job."""
        delivery = self.deliveries.get(delivery_id)
        if delivery is None or delivery.job_id != job_id or job_id not in self.jobs:
            return None
        return delivery

    def transfer_of(self, job_id: str, transfer_id: str) -> Transfer | None:
        """The transfer if it belongs to the (existing) job."""
        transfer = self.transfers.get(transfer_id)
        if transfer is None or transfer.job_id != job_id or job_id not in self.jobs:
            return None
        return transfer

    def delivery_progress(self, delivery: Delivery) -> Progress:
        """The delivery's summary: the sum of its transfers' progress."""
        total = Progress()
        for transfer_id in delivery.transfer_ids:
            total.add(self.transfers[transfer_id].progress)
        return total

    def job_is_busy(self, job: Job) -> bool:
        """True while one of the job's deliveries is still moving."""
        return any(
            self.transfers[t].state in (TransferState.SCHEDULED, TransferState.IN_PROGRESS)
            for d in job.delivery_ids
            for t in self.deliveries[d].transfer_ids
        )

    # -- changes -------------------------------------------------------------------------

    def add_delivery(self, delivery: Delivery, transfers: list[Transfer]) -> None:
        self.deliveries[delivery.delivery_id] = delivery
        for transfer in transfers:
            self.transfers[transfer.transfer_id] = transfer
        self.jobs[delivery.job_id].delivery_ids.append(delivery.delivery_id)
        self.mark_dirty()

    def mark_dirty(self) -> None:
        """Ask the saver to write the state soon (no-op without a state dir)."""
        if self.state_dir is not None:
            self._dirty.set()

    # -- persistence ---------------------------------------------------------------------

    def load(self) -> None:
        """Read the state file if there is one; otherwise start with one endpoint.

        Runs in a worker thread before the server starts, so it must not touch the loop.
        """
        if self.endpoints:  # already loaded: a server started again keeps its state
            return
        path = self.path
        if path is None or not path.exists():
            endpoint = Endpoint(new_id(), "emulator-endpoint", iso_now())
            self.endpoints[endpoint.endpoint_id] = endpoint
            return
        try:
            self._restore(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EmulatorStateError(f"cannot read emulator state {path}: {exc}") from exc
        log.info("emulator_state_loaded", path=str(path), jobs=len(self.jobs))

    def _restore(self, data: JsonDict) -> None:
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"unknown format version {data.get('version')!r}")
        self.account_id = data["accountId"]
        self.service_id = data["serviceId"]
        self.endpoints = {e["endpoint_id"]: Endpoint(**e) for e in data["endpoints"]}
        self.profiles = {p["profile_id"]: Profile(**p) for p in data["profiles"]}
        self.jobs = {j["job_id"]: Job(**j) for j in data["jobs"]}
        self.deliveries = {d["delivery_id"]: Delivery.from_json(d) for d in data["deliveries"]}
        self.transfers = {t["transfer_id"]: Transfer.from_json(t) for t in data["transfers"]}

    def snapshot(self) -> JsonDict:
        """Everything as plain JSON data (taken on the loop, so it is consistent)."""
        return {
            "version": FORMAT_VERSION,
            "accountId": self.account_id,
            "serviceId": self.service_id,
            "endpoints": [asdict(e) for e in self.endpoints.values()],
            "profiles": [asdict(p) for p in self.profiles.values()],
            "jobs": [asdict(j) for j in self.jobs.values()],
            "deliveries": [d.to_json() for d in self.deliveries.values()],
            "transfers": [t.to_json() for t in self.transfers.values()],
        }

    async def flush(self) -> None:
        """Write the state now if there is a state dir."""
        path = self.path
        if path is None:
            return
        self._dirty.clear()
        text = json.dumps(self.snapshot(), ensure_ascii=False)
        async with self._write_lock:
            try:
                await asyncio.to_thread(self._write, path, text)
            except OSError as exc:
                # Keep serving: the emulator is a test double, a full disk must not kill it.
                log.error("emulator_state_save_failed", path=str(path), error=str(exc))
                self._dirty.set()

    @staticmethod
    def _write(path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text)

    async def run_saver(self) -> None:
        """Write the state after changes, at most once per ``save_interval_s`` (coalesced)."""
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self._save_interval_s)
            await self.flush()
