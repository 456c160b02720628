"""The daemon: builds the components, runs them in one TaskGroup, handles signals.

Phases: startup (ledger, folder leases, targets, target registry, intakes, ops server) →
main loop (a
component that crashes stops the process with a non-zero code) → shutdown (stop intake,
let submissions in flight finish or persist, then cancel the rest, within
``shutdown_timeout_seconds``). Signal handlers only set flags; a second SIGINT/SIGTERM
cancels everything at once. A back end being down at start-up is not fatal: folders are
watched, files settle and queue, and the target registry retries until it can log in.
Stages and intakes act only on folders whose lease this daemon holds (``FolderOwnership``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

from jetwatch import logs
from jetwatch.app import views as views
from jetwatch.app.announce import Announcer
from jetwatch.app.intakes import Intakes
from jetwatch.app.ledgers import open_for_daemon
from jetwatch.app.lifecycle import Lifecycle
from jetwatch.app.ops_view import OpsView
from jetwatch.app.runtime import tune_interpreter
from jetwatch.config.load import load_settings
from jetwatch.config.settings import FolderSettings, Settings
from jetwatch.domain.store import LedgerStore
from jetwatch.domain.wake import Stage, Wakeups
from jetwatch.errors import ConfigError, ExitCode
from jetwatch.intake.folder import FolderIntake
from jetwatch.ops.health import LoopMonitor, Readiness
from jetwatch.ops.sdnotify import SdNotifier, run_watchdog
from jetwatch.ops.server import OpsServer
from jetwatch.pipeline.actions import PostActions
from jetwatch.pipeline.batcher import Batcher
from jetwatch.pipeline.deliverer import Deliverer
from jetwatch.pipeline.filelog import FileLines
from jetwatch.pipeline.ownership import FolderOwnership
from jetwatch.pipeline.tracker import Tracker
from jetwatch.pipeline.upkeep import LedgerMaintenance
from jetwatch.targets.backends import Backends
from jetwatch.targets.kinds import SPECS
from jetwatch.targets.registry import Route, TargetRegistry

log = structlog.get_logger(__name__)

CLEANUP_RESERVE_S = 1.0  # of the shutdown budget, kept for cancelling and closing
FORCED_EXIT_S = 2.0  # after a second signal, the process is gone within this


class Daemon:
    """One process: every configured folder, one client per back end, one ledger.

    ``hard_exit=True`` (the ``run`` command only) makes the shutdown deadline absolute,
    see :class:`~jetwatch.app.lifecycle.Lifecycle`. ``jetstream_module`` stands in for the
    vendor's ``jetstream`` module (tests and demos; see
    :class:`~jetwatch.targets.backends.Backends`).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        config_path: Path | None = None,
        hard_exit: bool = False,
        jetstream_module: Any = None,
    ) -> None:
        self.settings = settings
        self._jetstream_module = jetstream_module
        self._config_path = config_path
        self._life = Lifecycle(hard_exit=hard_exit)
        self._folders: dict[str, FolderSettings] = {f.label: f for f in settings.folders}
        self._forced = False
        self._others: list[asyncio.Task[None]] = []
        self.intakes: dict[str, FolderIntake] = {}  # bound to the running intakes at start
        self.ops_url: str | None = None
        self._notifier = SdNotifier()
        self.wakeups = Wakeups()

    # ---- public surface used by the CLI, the demo and tests -------------------------
    def request_stop(self) -> None:
        """First call: graceful shutdown; a second one: cancel everything now."""
        self._life.request_stop()

    def request_reload(self) -> None:
        self._life.request_reload()

    def folders(self) -> Mapping[str, FolderSettings]:
        """The configured folders this daemon may act on now (all of them on one host)."""
        acting = self.ownership.acting_on()  # once: each look is a pass over the folders
        return {k: f for k, f in self._folders.items() if k in acting}

    async def run(self) -> ExitCode:
        """Run until stopped; returns the process exit code."""
        started = time.monotonic()
        # Handlers go in first: a signal during start-up must not find the default action
        # (SIGHUP's would kill the process).
        self._life.install_signals()
        force_watch = asyncio.create_task(self._watch_force(), name="force-watch")
        code = ExitCode.FAILURE
        try:
            code = await self._run_with_ledger()
            if code == ExitCode.OK and self._forced:
                code = ExitCode.FAILURE  # stopped before in-flight work was persisted
            return code
        finally:
            force_watch.cancel()
            self._life.remove_signals()
            self._notifier.close()
            log.info("stopped", exit_code=int(code), seconds=round(time.monotonic() - started, 2))

    # ---- startup ---------------------------------------------------------------------
    async def _run_with_ledger(self) -> ExitCode:
        opened = await open_for_daemon(self.settings.ledger)
        if isinstance(opened, ExitCode):
            return opened
        self.ledger: LedgerStore
        self.ledger, lock = opened
        self.ownership = FolderOwnership(
            self.ledger, lambda: self._folders, lease_s=self.settings.ledger.lease_seconds
        )
        self._intakes = Intakes(self.ledger, self.wakeups, self._folders, self.ownership)
        self.intakes = self._intakes.by_label
        try:
            return await self._run_with_targets()
        finally:
            await self.ownership.leave()
            await self.ledger.aclose()
            if lock is not None:
                lock.release()

    async def _run_with_targets(self) -> ExitCode:
        backends = Backends(self.settings, jetstream_module=self._jetstream_module)
        for secret in backends.secrets():
            logs.register_secret(secret.get_secret_value())
        try:
            routes = backends.routes(self._folders.values())
            self._build(backends, routes)
            ops = OpsServer(
                self.settings.http.listen,
                readiness=self.readiness,
                status=self.status_json,
                loop_monitor=self.monitor,
                refresh=self._refresh_gauges,
                actions=self.ops_view if self.settings.http.actions else None,
                token=self.settings.http.token,
            )
            await ops.start()
        except ConfigError as exc:
            for key, message in exc.problems:
                log.error("config_error", key=key, problem=message)
            await backends.aclose()
            return ExitCode.CONFIG
        try:
            self.ops_url = ops.url
            return await self._main_loop()
        finally:
            await ops.stop()
            await backends.aclose()

    def _build(self, backends: Backends, routes: Mapping[str, Route]) -> None:
        jet = self.settings.jet
        self.backends = backends
        wakeups = self.wakeups
        self.registry = TargetRegistry(routes, recheck_s=jet.job_recheck_seconds, wakeups=wakeups)
        self.actions = PostActions(self.ledger, self.folders, wakeups=wakeups)
        self.batcher = Batcher(self.ledger, self.folders, wakeups=wakeups)
        self.tracker = Tracker(
            self.ledger,
            self.registry,
            self.folders,
            ownership=self.ownership,
            poll_min_s=jet.poll_min_seconds,
            poll_max_s=jet.poll_max_seconds,
            poll_bounds=backends.poll_bounds(),
            stall_bounds=backends.stall_bounds(),
            max_concurrent=jet.max_concurrent_polls,
            wakeups=wakeups,
            file_lines=FileLines(self.ledger, per_minute=self.settings.log.file_lines_per_minute),
        )
        self.deliverer = Deliverer(
            self.ledger, self.registry, self.folders, wakeups=wakeups, ownership=self.ownership,
            inherited_grace_s=jet.request_timeout_seconds,
        )  # fmt: skip
        self.monitor = LoopMonitor()
        self.ops_view = OpsView(
            self.settings, ledger=self.ledger, registry=self.registry, intakes=self.intakes,
            wakeups=wakeups, board=self.tracker.board,
        )  # fmt: skip
        self.maintenance = LedgerMaintenance(
            self.ledger, self.folders, retention_s=self.settings.ledger.retention_days * 86400
        )

    # ---- main loop -------------------------------------------------------------------
    async def _main_loop(self) -> ExitCode:
        crashed = False
        try:
            await self.ownership.run_once()  # before any stage looks at a folder
            async with asyncio.TaskGroup() as tg:
                self._intakes.bind(tg)
                # First, so that its tap hears the intakes start.
                view_task = tg.create_task(self.ops_view.run(), name="ops-view")
                self._intakes.sync()
                self._deliver_task = tg.create_task(self.deliverer.run(), name="deliver")
                self._watchdog_task = tg.create_task(
                    run_watchdog(self._notifier, self.healthy), name="watchdog"
                )
                self._others = [
                    view_task,
                    tg.create_task(self.ownership.run(), name="leases"),
                    tg.create_task(self._follow_ownership(), name="ownership"),
                    tg.create_task(self.registry.run(), name="targets"),
                    tg.create_task(self.batcher.run(), name="batch"),
                    tg.create_task(self.tracker.run(), name="track"),
                    tg.create_task(self.actions.run(), name="actions"),
                    tg.create_task(self.monitor.run(), name="loop-monitor"),
                    tg.create_task(self.maintenance.run(), name="ledger-upkeep"),
                    tg.create_task(
                        Announcer(self._notifier, self.intakes, self.registry, self.ledger).run(),
                        name="announce",
                    ),
                    self._watchdog_task,
                ]
                await self._supervise()
        except* Exception as group:
            for exc in group.exceptions:
                log.critical("component_crashed", error=repr(exc), exc_info=exc)
            crashed = True
        return ExitCode.FAILURE if crashed else ExitCode.OK

    async def _follow_ownership(self) -> None:
        while await self.ownership.changed.wait():
            self.ownership.changed.clear()
            if not self._life.stop.is_set():
                self._intakes.sync()
                self.wakeups.wake(*Stage)

    async def _supervise(self) -> None:
        life = self._life
        while not life.stop.is_set():
            await life.wait_stop_or_reload()
            if life.reload.is_set() and not life.stop.is_set():
                life.reload.clear()
                await self.reload()
        await self._shutdown()

    # ---- shutdown --------------------------------------------------------------------
    async def _shutdown(self) -> None:
        """Stop intake, give POSTs in flight the budget, then cancel whatever is left."""
        timeout_s = self.settings.daemon.shutdown_timeout_seconds
        self._life.exit_within(timeout_s)
        self._notifier.stopping()
        log.info("shutdown_started", timeout_s=timeout_s)
        self._intakes.cancel_all()
        self.deliverer.stop_intake()
        # Only the deliverer holds work worth waiting for (a POST whose answer would
        # otherwise leave its batch in doubt). Polls and post-actions resume after a restart.
        grace_s = max(0.1, timeout_s - CLEANUP_RESERVE_S)
        if not self._life.force.is_set():
            await asyncio.wait({self._deliver_task}, timeout=grace_s)
        if not self._deliver_task.done() and not self._life.force.is_set():
            log.warning(
                "shutdown_deadline",
                waited_s=round(grace_s, 2),
                effect="POSTs in flight cancelled; their batches are resolved on the next start",
            )
        self._deliver_task.cancel()
        for task in self._others:
            task.cancel()

    async def _watch_force(self) -> None:
        """A second stop request: cancel every component now, exit within FORCED_EXIT_S."""
        await self._life.force.wait()
        self._forced = True
        log.warning("shutdown_forced", reason="second signal")
        self._life.exit_within(FORCED_EXIT_S)
        tasks = [*self._intakes.tasks.values(), *self._others]
        if hasattr(self, "_deliver_task"):
            tasks.append(self._deliver_task)
        for task in tasks:
            task.cancel()

    # ---- reload ----------------------------------------------------------------------
    async def reload(self) -> None:
        """Apply a new config file: folders added, removed or changed; keeps in-flight work.

        Batches, deliveries and post-actions live in the ledger, not in an intake, so a
        folder's intake can be replaced without losing anything: a removed folder's work
        waits in the ledger until the folder is configured again.
        """
        try:
            new = load_settings(self._config_path)
            # A target whose section was not in use at start cannot be built now.
            routes = self.backends.routes(new.folders)
        except ConfigError as exc:
            log.error(
                "reload_rejected",
                problems=[f"{k}: {m}" for k, m in exc.problems],
                effect="the running configuration stays in force",
            )
            return
        for section in (*(s.section for s in SPECS.values()), "ledger", "http", "notify"):
            if getattr(new, section) != getattr(self.settings, section):
                log.warning("reload_needs_restart", section=section)
        if new.log != self.settings.log:
            logs.configure_logging(new.log.level, new.log.format, background=True)
        await self._intakes.apply(new.folders)
        if self._folders.keys() - self.ownership.acting_on():
            self.ownership.nudge()  # new folders are taken over by a lease round at once
        # Sections that need a restart keep the values in use, so the next reload and
        # /status compare against what really runs.
        self.settings = self.settings.model_copy(
            update={"folders": new.folders, "log": new.log, "daemon": new.daemon}
        )
        self.registry.set_routes({label: routes[label] for label in self._folders})
        self.wakeups.wake(*Stage)
        log.info("config_reloaded", folders=len(self._folders))

    # ---- health, readiness, status ---------------------------------------------------
    def healthy(self) -> bool:
        """For the systemd watchdog: the loop runs and no component has stopped."""
        if self._life.stop.is_set():
            return True  # stopping: our own deadline applies, not the watchdog's
        tasks = [self._deliver_task, *self._others, *self._intakes.tasks.values()]
        stopped = [t for t in tasks if t.done() and t is not self._watchdog_task]
        return self.monitor.is_healthy(5.0) and not stopped

    def readiness(self) -> Readiness:
        stopping = self._life.stop.is_set()
        verdict = views.readiness(stopping=stopping, targets=self.registry, intakes=self.intakes)
        return views.with_ownership(verdict, self.ownership, list(self._folders))

    async def status_json(self) -> dict[str, Any]:
        data = await views.status_json(self.ledger, self.registry, self.readiness())
        data["in_doubt"] = self.deliverer.in_doubt.waiting()
        data = await views.with_fleet(data, self.ledger, self.ownership)
        return self.ops_view.extend(data)

    async def _refresh_gauges(self) -> None:
        await views.refresh_gauges(self.ledger, list(self._folders), self.intakes)
        await views.refresh_fleet_gauges(self.ledger)
        self.ops_view.refresh_gauges()


async def run_daemon(config_path: Path | None) -> ExitCode:
    """Load config, configure logs, run the daemon; the CLI's ``run`` command."""
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        for key, message in exc.problems:
            print(f"config error: {key}: {message}", file=sys.stderr)
        return ExitCode.CONFIG
    logs.configure_logging(settings.log.level, settings.log.format, background=True)
    tune_interpreter()
    try:
        return await Daemon(settings, config_path=config_path, hard_exit=True).run()
    except Exception as exc:  # a bug in start-up or shutdown: say so in the log, exit 1
        log.critical("daemon_crashed", error=repr(exc), exc_info=exc)
        return ExitCode.FAILURE
