"""The daemon: builds the components, runs them in one TaskGroup, handles signals.

Phases: startup (ledger, API client, job registry, intakes, ops server) → main loop (a
component that crashes stops the process with a non-zero code) → shutdown (stop intake,
let submissions in flight finish or persist, then cancel the rest, within
``shutdown_timeout_seconds``). Signal handlers only set flags; a second SIGINT/SIGTERM
stops at once. The API being down at start-up is not fatal: folders are watched, files
settle and queue, and the job registry retries until it can log in.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

from jetwatch import logs, metrics, status
from jetwatch.actions import PostActions
from jetwatch.config import FolderSettings, Settings, load_settings
from jetwatch.deliver import Deliverer
from jetwatch.errors import ConfigError, LedgerError
from jetwatch.intake import FolderIntake
from jetwatch.jet.client import JetClient
from jetwatch.jobs import JobRegistry, JobStatus
from jetwatch.ledger import LedgerStore
from jetwatch.ledger_sqlite import SqliteLedger
from jetwatch.ops import LoopMonitor, OpsServer, Readiness
from jetwatch.sdnotify import SdNotifier, run_watchdog
from jetwatch.track import Tracker

log = structlog.get_logger(__name__)

EXIT_OK, EXIT_CRASH, EXIT_CONFIG, EXIT_LEDGER = 0, 1, 2, 3
STATUS_EVERY_S = 10.0


class Daemon:
    """One process: every configured folder, one API client, one ledger."""

    def __init__(self, settings: Settings, *, config_path: Path | None = None) -> None:
        self.settings = settings
        self._config_path = config_path
        self._folders: dict[str, FolderSettings] = {f.label: f for f in settings.folders}
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._signals = 0
        self._intake_tasks: dict[str, asyncio.Task[None]] = {}
        self.intakes: dict[str, FolderIntake] = {}
        self.ops_url: str | None = None
        self._notifier = SdNotifier()

    # ---- public surface used by the CLI, the demo and tests -------------------------
    def request_stop(self) -> None:
        self._signals += 1
        self._stop.set()

    def request_reload(self) -> None:
        self._reload.set()

    def folders(self) -> Mapping[str, FolderSettings]:
        return self._folders

    async def run(self) -> int:
        """Run until stopped; returns the process exit code."""
        try:
            self.ledger: LedgerStore = SqliteLedger.open(self.settings.ledger.path)
        except LedgerError as exc:
            log.error(
                "ledger_refused",
                path=str(self.settings.ledger.path),
                error=str(exc),
                hint="see README 'Ledger': jetwatch ledger move-aside",
            )
            return EXIT_LEDGER
        try:
            return await self._run_with_ledger()
        finally:
            self.ledger.close()

    # ---- startup ---------------------------------------------------------------------
    async def _run_with_ledger(self) -> int:
        jet = self.settings.jet
        assert jet.client_secret is not None
        logs.register_secret(jet.client_secret.get_secret_value())
        async with JetClient(
            jet.base_url,
            jet.client_id,
            jet.client_secret,
            request_timeout_s=jet.request_timeout_seconds,
            connect_timeout_s=jet.connect_timeout_seconds,
            max_retries=jet.max_retries,
            rate_limit_per_s=jet.rate_limit_per_second,
        ) as client:
            self._build(client)
            ops = OpsServer(
                self.settings.http.listen,
                readiness=self.readiness,
                status=self.status_json,
                loop_monitor=self.monitor,
                refresh=self._refresh_gauges,
            )
            try:
                await ops.start()
            except ConfigError as exc:
                for key, message in exc.problems:
                    log.error("config_error", key=key, problem=message)
                return EXIT_CONFIG
            try:
                self.ops_url = ops.url
                return await self._main_loop()
            finally:
                await ops.stop()

    def _build(self, client: JetClient) -> None:
        jet = self.settings.jet
        self.jobs = JobRegistry(
            client,
            {f.job for f in self._folders.values()},
            recheck_s=jet.job_recheck_seconds,
            on_change=self._job_changed,
        )
        self.actions = PostActions(self.ledger, self.folders)
        self.tracker = Tracker(
            self.ledger,
            client,
            self.folders,
            poll_min_s=jet.poll_min_seconds,
            poll_max_s=jet.poll_max_seconds,
            max_concurrent=jet.max_concurrent_polls,
            delivery_timeout_s=jet.delivery_timeout_seconds,
            on_finished=self._finished,
        )
        self.deliverer = Deliverer(
            self.ledger, client, self.jobs, self.folders, on_submitted=self.tracker.wake
        )
        self.monitor = LoopMonitor()

    # ---- main loop -------------------------------------------------------------------
    async def _main_loop(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        crashed = False
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                for folder in self._folders.values():
                    self._start_intake(folder)
                self._deliver_task = tg.create_task(self.deliverer.run(), name="deliver")
                self._others = [
                    tg.create_task(self.jobs.run(), name="jobs"),
                    tg.create_task(self.tracker.run(), name="track"),
                    tg.create_task(self.actions.run(), name="actions"),
                    tg.create_task(self.monitor.run(), name="loop-monitor"),
                    tg.create_task(run_watchdog(self._notifier, self.healthy), name="watchdog"),
                    tg.create_task(self._announce(), name="announce"),
                ]
                await self._supervise()
        except* Exception as group:
            for exc in group.exceptions:
                log.critical("component_crashed", error=repr(exc), exc_info=exc)
            crashed = True
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        return EXIT_CRASH if crashed else EXIT_OK

    def _start_intake(self, folder: FolderSettings) -> None:
        intake = FolderIntake(folder, self.ledger, on_settled=self.deliverer.wake)
        self.intakes[folder.label] = intake
        self._intake_tasks[folder.label] = self._tg.create_task(
            intake.run(), name=f"intake:{folder.label}"
        )

    async def _supervise(self) -> None:
        while not self._stop.is_set():
            reload_wait = asyncio.ensure_future(self._reload.wait())
            stop_wait = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait({reload_wait, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            reload_wait.cancel()
            stop_wait.cancel()
            if self._reload.is_set() and not self._stop.is_set():
                self._reload.clear()
                self.reload()
        await self._shutdown()

    async def _shutdown(self) -> None:
        deadline = time.monotonic() + self.settings.daemon.shutdown_timeout_seconds
        self._notifier.stopping()
        log.info("shutdown_started")
        for task in self._intake_tasks.values():
            task.cancel()
        self.deliverer.stop_intake()
        remaining = max(0.1, deadline - time.monotonic() - 1.0)
        _, pending = await asyncio.wait({self._deliver_task}, timeout=remaining)
        if pending and self._signals < 2:
            log.warning("shutdown_deadline", cancelled=len(pending))
        self._deliver_task.cancel()
        for task in self._others:
            task.cancel()
        log.info("shutdown_done", seconds=round(deadline - time.monotonic(), 2))

    # ---- reload ----------------------------------------------------------------------
    def reload(self) -> None:
        """Apply a new config file: folders added, removed or changed; keeps in-flight work."""
        try:
            new = load_settings(self._config_path)
        except ConfigError as exc:
            log.error("reload_rejected", problems=[f"{k}: {m}" for k, m in exc.problems])
            return
        for section in ("jet", "ledger", "http", "daemon"):
            if getattr(new, section) != getattr(self.settings, section):
                log.warning("reload_needs_restart", section=section)
        logs.configure_logging(new.log.level, new.log.format)
        wanted = {f.label: f for f in new.folders}
        for label in list(self._folders):
            if label not in wanted or wanted[label] != self._folders[label]:
                self._intake_tasks.pop(label).cancel()
                self.intakes.pop(label, None)
                del self._folders[label]
                log.info("folder_removed", folder=label)
        for label, folder in wanted.items():
            if label not in self._folders:
                self._folders[label] = folder
                self._start_intake(folder)
                log.info("folder_added", folder=label, path=str(folder.path))
        self.jobs.set_refs({f.job for f in self._folders.values()})
        self.settings = new.model_copy(update={"jet": self.settings.jet})
        self.deliverer.wake()
        log.info("config_reloaded", folders=len(self._folders))

    # ---- callbacks between components ------------------------------------------------
    def _job_changed(self, job: JobStatus) -> None:
        if not job.usable:
            return
        labels = {label for label, f in self._folders.items() if f.job == job.ref}
        held = [b.id for b in self.ledger.held_batches() if b.folder in labels]
        if held:
            released = self.ledger.release_held(held, time.time())
            log.info("batches_released", job=job.ref, batches=released)
        self.deliverer.wake()

    def _finished(self) -> None:
        self.actions.wake()
        self.deliverer.wake()

    async def _announce(self) -> None:
        """READY=1 once every folder had its first scan; then STATUS= now and then."""
        await asyncio.gather(*(i.wait_first_scan() for i in list(self.intakes.values())))
        self._notifier.ready()
        log.info("ready", folders=len(self._folders), api_ok=self.jobs.api_ok)
        while True:
            counts = self.ledger.counts()
            totals: dict[str, int] = {}
            for per_state in counts.values():
                for state, n in per_state.items():
                    totals[state] = totals.get(state, 0) + n
            text = " ".join(f"{k.lower()}={v}" for k, v in sorted(totals.items()))
            api = "api ok" if self.jobs.api_ok else "api down"
            self._notifier.status(f"{api}; {text}" if text else api)
            await asyncio.sleep(STATUS_EVERY_S)

    # ---- health, readiness, status ---------------------------------------------------
    def healthy(self) -> bool:
        tasks = [self._deliver_task, *self._others, *self._intake_tasks.values()]
        return self.monitor.is_healthy(5.0) and not any(t.done() for t in tasks)

    def readiness(self) -> Readiness:
        reasons: list[str] = []
        if not self.jobs.api_ok:
            reasons.append(self.jobs.api_problem)
        for job in self.jobs.all_status():
            if job.job_id is None or job.problem:
                reasons.append(f"job {job.ref!r}: {job.problem or 'not resolved yet'}")
        folders: dict[str, Any] = {}
        for label, intake in self.intakes.items():
            h = intake.health
            folders[label] = {
                "mode": h.mode,
                "reason": h.reason,
                "first_scan_done": h.first_scan_done,
                "blocked": h.blocked,
            }
            if not h.first_scan_done:
                reasons.append(f"folder {label!r}: first scan not finished")
            if h.mode == "down":
                reasons.append(f"folder {label!r}: {h.reason}")
            if h.blocked:
                reasons.append(f"folder {label!r}: {h.blocked}")
        return Readiness(not reasons, tuple(reasons), {"folders": folders})

    def status_json(self) -> dict[str, Any]:
        data = status.to_json(self.ledger.snapshot(time.time()))
        data["api"] = {"ok": self.jobs.api_ok, "problem": self.jobs.api_problem}
        data["jobs"] = [
            {"job": j.ref, "job_id": j.job_id, "paused": j.paused, "problem": j.problem}
            for j in self.jobs.all_status()
        ]
        data["watch"] = self.readiness().details["folders"]
        return data

    def _refresh_gauges(self) -> None:
        now = time.time()
        metrics.LEDGER_BYTES.set(self.ledger.size_bytes())
        held: dict[str, int] = dict.fromkeys(self._folders, 0)
        for batch in self.ledger.held_batches():
            held[batch.folder] = held.get(batch.folder, 0) + 1
        for label, n in held.items():
            metrics.BATCHES_HELD.labels(label).set(n)
        for label, intake in self.intakes.items():
            since = intake.oldest_pending_since()
            metrics.OLDEST_PENDING_SECONDS.labels(label).set(0 if since is None else now - since)


async def run_daemon(config_path: Path | None) -> int:
    """Load config, configure logs, run the daemon; the CLI's ``run`` command."""
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        for key, message in exc.problems:
            print(f"config error: {key}: {message}")
        return EXIT_CONFIG
    logs.configure_logging(settings.log.level, settings.log.format)
    return await Daemon(settings, config_path=config_path).run()
