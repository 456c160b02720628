"""What operators see and may do beyond the ledger: progress, history, events, notifications.

The daemon builds one :class:`OpsView`; it adds to the ``/status`` document what only the
running process knows (each delivery's progress, rate and ETA, the last hour per folder,
the last events, the webhook's state, version and uptime), sets the progress gauges when
``/metrics`` is scraped, runs the notifier, and carries out the console's two actions
through the ledger and wake-ups like any other stage would.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Mapping
from typing import Any

from jetwatch import __version__, logs, metrics
from jetwatch.apis.webhook import WebhookClient
from jetwatch.config.settings import Settings
from jetwatch.domain.progress import DeliveryProgress, ProgressBoard
from jetwatch.domain.store import LedgerStore
from jetwatch.domain.wake import Stage, Wakeups
from jetwatch.intake.folder import FolderIntake
from jetwatch.ops.events import EventFeed
from jetwatch.ops.notify import Notifier
from jetwatch.targets.registry import TargetRegistry, api_name


def progress_json(p: DeliveryProgress) -> dict[str, Any]:
    """One delivery's progress as ``/status`` and ``jetwatch status`` show it."""
    return {
        "state": p.state,
        "files": p.files,
        "files_done": p.files_done,
        "files_failed": p.files_failed,
        "bytes_total": p.bytes_total,
        "bytes_done": p.bytes_done,
        "fraction": round(p.fraction, 4),
        "bytes_per_second": None if p.bytes_per_s is None else round(p.bytes_per_s, 1),
        "files_per_second": None if p.files_per_s is None else round(p.files_per_s, 3),
        "eta_s": None if p.eta_s is None else round(p.eta_s, 1),
        "updated_at": p.updated_at,
    }


class OpsView:
    """Progress board, event feed and notifier of one daemon, and the console's actions."""

    def __init__(
        self,
        settings: Settings,
        *,
        ledger: LedgerStore,
        registry: TargetRegistry,
        intakes: Mapping[str, FolderIntake],
        wakeups: Wakeups,
        board: ProgressBoard,
    ) -> None:
        self._ledger = ledger
        self._registry = registry
        self._intakes = intakes
        self._wakeups = wakeups
        self.board = board
        self.feed = EventFeed()
        self._actions = settings.http.actions and settings.http.token is not None
        self._started = time.monotonic()
        self._host = socket.gethostname()
        notify = settings.notify
        self.notifier: Notifier | None = None
        for secret in (settings.http.token, notify.webhook_url):
            if secret is not None:
                logs.register_secret(secret)
        if notify.webhook_url is not None:
            webhook = WebhookClient(notify.webhook_url, timeout_s=notify.timeout_seconds)
            self.notifier = Notifier(
                self.feed,
                webhook,
                events=notify.events,
                queue_size=notify.queue_size,
                max_attempts=notify.max_attempts,
                host=self._host,
            )

    async def run(self) -> None:
        """Listen to the daemon's events (and send notifications) until cancelled."""
        logs.add_tap(self.feed.tap)
        try:
            if self.notifier is not None:
                await self.notifier.run()
            else:
                await asyncio.Event().wait()
        finally:
            logs.remove_tap(self.feed.tap)

    def extend(self, data: dict[str, Any]) -> dict[str, Any]:
        """Add what only the running daemon knows to a ``status_json`` document."""
        now = float(data.get("taken_at") or time.time())
        flights = self.board.in_flight()
        for item in data.get("in_flight") or []:
            p = flights.get(item.get("batch_id"))
            item["progress"] = None if p is None else progress_json(p)
        labels = {f["folder"] for f in data.get("folders") or []} | self.board.folders()
        throughput = {}
        for label in sorted(labels):
            m = self.board.minutes(label, now)
            throughput[label] = {
                "first_minute_at": m.first_minute_at,
                "files": list(m.files),
                "bytes": list(m.bytes),
            }
        for kind, api in (data.get("api") or {}).get("targets", {}).items():
            api["name"] = api_name(kind)
        notifier = self.notifier
        data.update(
            version=__version__,
            host=self._host,
            uptime_s=round(time.monotonic() - self._started, 1),
            throughput=throughput,
            events=[e.to_json() for e in self.feed.recent()],
            notify={"enabled": False} if notifier is None else notifier.state.to_json(),
            actions=self._actions,
        )
        return data

    def refresh_gauges(self) -> None:
        """The progress gauges, per folder, from the tracker's last polls."""
        per: dict[str, list[DeliveryProgress]] = {label: [] for label in self._intakes}
        for p in self.board.in_flight().values():
            per.setdefault(p.folder, []).append(p)
        for label, items in per.items():
            metrics.DELIVERY_BYTES_DONE.labels(label).set(sum(p.bytes_done for p in items))
            metrics.DELIVERY_BYTES_TOTAL.labels(label).set(sum(p.bytes_total for p in items))
            metrics.DELIVERY_FILES_DONE.labels(label).set(sum(p.files_done for p in items))
            metrics.DELIVERY_FILES_TOTAL.labels(label).set(sum(p.files for p in items))
            metrics.DELIVERY_RATE.labels(label).set(sum(p.bytes_per_s or 0.0 for p in items))
            etas = [p.eta_s for p in items if p.eta_s is not None]
            metrics.DELIVERY_ETA_SECONDS.labels(label).set(max(etas, default=0.0))

    # ---- the console's actions ---------------------------------------------------------
    async def retry_failed(self, folder: str) -> int | None:
        """FAILED files of ``folder`` queued again (like ``jetwatch ledger retry-failed``)."""
        if folder not in self._intakes:
            return None
        count = await self._ledger.requeue_failed(time.time(), folder)
        self._wakeups.wake(Stage.BATCH)
        return count

    async def recheck(self, folder: str) -> bool:
        """Check the targets now, rescan ``folder`` and look at its held batches again."""
        intake = self._intakes.get(folder)
        if intake is None:
            return False
        self._registry.request_check()
        intake.watch.request_rescan()
        self._wakeups.wake(Stage.DELIVER)
        return True
