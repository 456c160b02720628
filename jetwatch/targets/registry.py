"""Target registry: checks every folder's target, on start and every ``job_recheck_seconds``.

Checking needs the back end, which may be down at start-up: the daemon keeps watching and
queuing meanwhile, and this registry retries with backoff, keeping one API state per
target kind (Jet, Integration Manager, JetStream). A target that is paused, missing,
forbidden or unusable (a Jet job that is not manual) makes its folder's batches HELD; the
registry re-checks, and when a folder's target is usable again it wakes the deliverer,
which releases them (:mod:`jetwatch.pipeline.holds`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from jetwatch.apis.rounds import one_round
from jetwatch.domain.backoff import Backoff, Jitter
from jetwatch.domain.clock import SYSTEM_CLOCK, Clock
from jetwatch.domain.states import HoldReason
from jetwatch.domain.target import Target
from jetwatch.domain.wake import Stage, Wakeups, sleep_or_wake
from jetwatch.errors import ApiError, AuthError, ProtocolError, TransportError
from jetwatch.targets.kinds import SPECS, spec_of

log = structlog.get_logger(__name__)

NOT_CHECKED = "not logged in yet"


@dataclass(frozen=True, slots=True)
class Route:
    """A folder's target, and what the folder names there (job, job config, destination)."""

    target: Target
    ref: str


@dataclass(frozen=True, slots=True)
class TargetState:
    """What the daemon knows about one folder's target."""

    folder: str
    kind: str
    ref: str
    ident: str | None = None  # the resolved job / job config id; None until resolved
    paused: bool = False
    problem: str = ""  # why batches cannot be sent now ("" when they can)
    checked_at: float = 0.0
    hold_reason: HoldReason = HoldReason.UNUSABLE  # what a batch held for ``problem`` shows

    @property
    def usable(self) -> bool:
        return self.ident is not None and not self.paused and not self.problem


@dataclass(frozen=True, slots=True)
class ApiState:
    """Whether one kind of back end could be asked at the last check."""

    ok: bool = False
    problem: str = NOT_CHECKED


def api_name(kind: str) -> str:
    spec = SPECS.get(kind)
    return kind if spec is None else spec.api_name


class TargetRegistry:
    """Checks and re-checks targets; the deliver loop asks it before every submission."""

    def __init__(
        self,
        routes: Mapping[str, Route],
        *,
        recheck_s: float = 30.0,
        wakeups: Wakeups | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._recheck_s = recheck_s
        self._wakeups = wakeups or Wakeups()
        self._clock = clock
        self._routes: dict[str, Route] = {}
        # Routes of folders a reload removed: their batches in flight are still followed.
        self._retired: dict[str, Route] = {}
        self._state: dict[str, TargetState] = {}
        self._api: dict[str, ApiState] = {}
        self._wake = asyncio.Event()
        self.set_routes(routes)

    def set_routes(self, routes: Mapping[str, Route]) -> None:
        """Track a new set of folders (config reload); unchanged ones keep what is known."""
        old_routes, old_state = self._routes, self._state
        self._routes = dict(routes)
        for label, route in old_routes.items():
            if label not in self._routes:
                self._retired[label] = route
        for label in self._routes:
            self._retired.pop(label, None)
        self._state = {}
        for label, route in self._routes.items():
            kept = old_routes.get(label) == route and label in old_state
            fresh = TargetState(label, route.target.kind, route.ref)
            self._state[label] = old_state[label] if kept else fresh
        self._wake.set()

    def target(self, label: str) -> Target | None:
        """The folder's target; for a folder a reload removed, the one it had."""
        route = self._routes.get(label) or self._retired.get(label)
        return None if route is None else route.target

    def status(self, label: str) -> TargetState:
        return self._state.get(label, TargetState(label, "", "", problem="not configured"))

    def all_status(self) -> list[TargetState]:
        return list(self._state.values())

    def kinds(self) -> list[str]:
        """The target kinds the folders use, in a stable order."""
        return sorted({route.target.kind for route in self._routes.values()})

    def api(self, kind: str) -> ApiState:
        return self._api.get(kind, ApiState())

    @property
    def api_ok(self) -> bool:
        """Every kind of back end in use could be asked at its last check."""
        return all(self.api(kind).ok for kind in self.kinds())

    @property
    def api_problem(self) -> str:
        problems = [self.api(kind).problem for kind in self.kinds() if not self.api(kind).ok]
        return "; ".join(problems)

    @property
    def ready(self) -> bool:
        return self.api_ok and all(s.ident is not None for s in self._state.values())

    def note_refused(self, label: str, reason: HoldReason, detail: str = "") -> None:
        """Record what a refused submission told us, until the next check says otherwise."""
        old = self.status(label)
        paused = reason is HoldReason.PAUSED
        why = "" if paused else (f"{reason.value}: {detail}" if detail else reason.value)
        now = self._clock.wall()
        self._set(TargetState(label, old.kind, old.ref, old.ident, paused, why, now, reason))
        self._wake.set()

    def request_check(self) -> None:
        """Check every target soon (an operator asked), not only at the next ``recheck_s``."""
        self._wake.set()

    async def run(self) -> None:
        """Check every target now, then every ``recheck_s`` (sooner when asked), forever."""
        failures = 0
        while True:
            ok = await self.check_all()
            failures = 0 if ok else failures + 1
            delay = self._recheck_s if ok else _down_backoff(self._recheck_s).delay_s(failures)
            # Not cleared here: a request made while that round ran (a recheck, a refused
            # POST) may postdate what the round asked, so it gets a round of its own.
            await sleep_or_wake(self._wake, delay * random.uniform(0.9, 1.1))

    async def check_all(self) -> bool:
        """Check every folder's target once; False when some back end could not be asked."""
        by_kind: dict[str, list[str]] = {}
        for label, route in self._routes.items():
            by_kind.setdefault(route.target.kind, []).append(label)
        # Kinds in parallel: a JetStream server that hangs must not delay the Jet checks.
        # One round: folders sharing a job (and the storage profiles) ask for them once.
        with one_round():
            checks = (self._check_kind(k, ls) for k, ls in by_kind.items())
            results = await asyncio.gather(*checks)
        return all(results)

    async def _check_kind(self, kind: str, labels: list[str]) -> bool:
        for label in labels:
            route = self._routes.get(label)
            if route is None:
                continue  # removed by a reload meanwhile
            try:
                found = await route.target.check()
            except ApiError as exc:
                self._api_down(kind, _api_problem(kind, exc))
                return False
            ident = found.ident or (kind if found.ready else None)
            state = TargetState(
                label,
                kind,
                route.ref,
                ident,
                found.paused,
                found.problem,
                self._clock.wall(),
                found.hold,
            )
            if self._routes.get(label) == route:
                self._set(state)
        if not self.api(kind).ok:
            log.info(_event(kind, "api_ok"))
        self._api[kind] = ApiState(True, "")
        return True

    def _api_down(self, kind: str, problem: str) -> None:
        old = self.api(kind)
        if old.ok or old.problem != problem:
            log.warning(_event(kind, "api_unavailable"), problem=problem)
        self._api[kind] = ApiState(False, problem)

    def _set(self, new: TargetState) -> None:
        old = self._state.get(new.folder)
        self._state[new.folder] = new
        changed = old is None or (old.ident, old.paused, old.problem) != (
            new.ident,
            new.paused,
            new.problem,
        )
        if not changed:
            return
        fields = {"folder": new.folder, "target": new.kind, "job": new.ref, "job_id": new.ident}
        if new.problem:
            log.error("job_unusable", problem=new.problem, **fields)
        elif new.paused:
            log.warning("job_paused", **fields)
        else:
            log.info("job_ready", **fields)
        if new.usable:
            self._wakeups.wake(Stage.DELIVER)  # its held batches may go again


def _event(kind: str, what: str) -> str:
    """``jet_api_ok``, ``integration_manager_api_unavailable``, ...: one event name per kind."""
    return spec_of(kind).event(what)


def _down_backoff(recheck_s: float) -> Backoff:
    """Re-checks while an API is down: 4 s, 8 s, ... up to recheck_s (and at most 64 s)."""
    return Backoff(2.0, min(recheck_s, 64.0), Jitter.NONE)


def _api_problem(kind: str, exc: ApiError) -> str:
    name = api_name(kind)
    if isinstance(exc, TransportError | ProtocolError):
        return f"{name} unreachable: {exc}"
    if isinstance(exc, AuthError):
        return f"{name} refused the credentials: {exc}"
    return f"{name}: checking failed: {exc}"
