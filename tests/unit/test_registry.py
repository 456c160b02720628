"""The target registry: per-folder states, per-kind API state, changes reported, reasons shown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from jetwatch.app import views as views
from jetwatch.domain.states import HoldReason
from jetwatch.domain.target import Lookup, Progress, SubmitObject, Target, TargetStatus
from jetwatch.domain.wake import Stage, Wakeups
from jetwatch.errors import ApiError, AuthError, RejectedError, TransportError
from jetwatch.targets.registry import Route, TargetRegistry


@dataclass
class ScriptedTarget:
    """A Target whose ``check`` answers what the test sets (or raises it)."""

    kind: str
    answer: TargetStatus | ApiError = field(default_factory=lambda: TargetStatus(True, ident="x"))
    checks: int = 0

    async def check(self) -> TargetStatus:
        self.checks += 1
        if isinstance(self.answer, ApiError):
            raise self.answer
        return self.answer

    async def submit(self, objects: Sequence[SubmitObject], *, ident: str | None = None) -> str:
        return "h"

    async def poll(
        self, handle: str, objects: int, age_s: float, *, ident: str | None = None
    ) -> Progress:
        return Progress(True, False, "done")

    async def find_submission(
        self,
        objects: Sequence[SubmitObject],
        known_handles: set[str],
        *,
        ident: str | None = None,
        since: float | None = None,
    ) -> Lookup:
        return Lookup.not_received()

    async def is_moving(self, handle: str, *, ident: str | None = None) -> bool:
        return True

    async def aclose(self) -> None:
        return None


JOB_EVENTS = ("job_ready", "job_paused", "job_unusable")


def registry(
    targets: dict[str, tuple[ScriptedTarget, str]], wakeups: Wakeups | None = None
) -> TargetRegistry:
    routes = {label: Route(t, ref) for label, (t, ref) in targets.items()}
    return TargetRegistry(routes, wakeups=wakeups)


def changes(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The folder state changes the registry reported (one log event each)."""
    return [e for e in logs if e["event"] in JOB_EVENTS]


def test_scripted_target_is_a_target() -> None:
    """The test double satisfies the protocol the registry relies on."""
    assert isinstance(ScriptedTarget("jet"), Target)


async def test_states_and_changes_follow_the_checks() -> None:
    """Ready, paused and problem answers become folder states; only changes are reported."""
    jet = ScriptedTarget("jet", TargetStatus(True, ident="job-1"))
    im = ScriptedTarget("integration-manager", TargetStatus(False, True, "", "44"))
    wakeups = Wakeups()
    reg = registry({"a": (jet, "Job"), "b": (im, "44")}, wakeups)
    assert not reg.ready
    assert reg.status("a").ident is None
    with structlog.testing.capture_logs() as logs:
        assert await reg.check_all()
        assert reg.status("a").usable
        assert (reg.status("b").paused, reg.status("b").usable) == (True, False)
        assert reg.api_ok
        assert reg.ready
        assert [c["folder"] for c in changes(logs)] == ["a", "b"]
        assert await wakeups.sleep(Stage.DELIVER, 0)  # a usable target: held batches may go
        assert await reg.check_all()
        assert len(changes(logs)) == 2  # nothing changed, nothing reported
        assert not await wakeups.sleep(Stage.DELIVER, 0)
        im.answer = TargetStatus(True, ident="44")
        assert await reg.check_all()
    assert changes(logs)[-1]["folder"] == "b"
    assert changes(logs)[-1]["event"] == "job_ready"
    assert await wakeups.sleep(Stage.DELIVER, 0)


async def test_api_down_is_per_kind_and_keeps_folder_states() -> None:
    """One kind's API failing marks only that kind down; its folders keep what was known."""
    jet = ScriptedTarget("jet")
    js = ScriptedTarget("jetstream", TargetStatus(True))
    reg = registry({"a": (jet, "Job"), "b": (js, "h:1/")})
    assert await reg.check_all()
    assert reg.status("b").ident == "jetstream"  # ready without an ident of its own
    js.answer = TransportError("connection refused")
    assert not await reg.check_all()
    assert reg.api("jet").ok
    assert not reg.api("jetstream").ok
    assert reg.api("jetstream").problem == "JetStream server unreachable: connection refused"
    assert not reg.api_ok
    assert reg.status("b").usable  # last known state stands
    js.answer = AuthError("no", status=401)
    await reg.check_all()
    assert "refused the credentials" in reg.api_problem
    js.answer = RejectedError("odd", status=400)
    await reg.check_all()
    assert reg.api("jetstream").problem == "JetStream server: checking failed: odd"


async def test_an_api_failure_stops_that_kinds_round() -> None:
    """After one folder's check finds the API down, the kind's other folders are not asked."""
    first = ScriptedTarget("jet", TransportError("down"))
    second = ScriptedTarget("jet")
    reg = registry({"a": (first, "J1"), "b": (second, "J2")})
    assert not await reg.check_all()
    assert (first.checks, second.checks) == (1, 0)


async def test_note_refused_holds_until_a_check_says_otherwise() -> None:
    """A refused submission marks the folder paused or broken at once; the next check decides."""
    target = ScriptedTarget("jet", TargetStatus(True, ident="job-1"))
    reg = registry({"a": (target, "Job")})
    await reg.check_all()
    reg.note_refused("a", HoldReason.PAUSED)
    assert (reg.status("a").paused, reg.status("a").problem) == (True, "")
    reg.note_refused("a", HoldReason.NOT_FOUND)
    assert reg.status("a").problem == "job not found (404)"
    with structlog.testing.capture_logs() as logs:
        await reg.check_all()
    assert reg.status("a").usable
    assert changes(logs)[-1]["event"] == "job_ready"


@dataclass
class GatedTarget(ScriptedTarget):
    """A ScriptedTarget whose first check waits until the test opens ``gate``."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def check(self) -> TargetStatus:
        self.started.set()
        if self.checks == 0:
            await self.gate.wait()
        return await super().check()


async def test_a_check_asked_for_during_a_round_runs_after_it() -> None:
    """An operator's recheck (or a refused POST) that comes while a round is under way gets
    a round of its own: that round may have asked the API before the job was resumed."""
    target = GatedTarget("jet")
    reg = TargetRegistry({"a": Route(target, "Job")}, recheck_s=3600.0)
    task = asyncio.create_task(reg.run())
    try:
        await asyncio.wait_for(target.started.wait(), 5.0)
        reg.request_check()  # the job was resumed after the round asked
        target.gate.set()
        async with asyncio.timeout(5.0):  # not the hour recheck_s says
            while target.checks < 2:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_reload_keeps_unchanged_routes_and_retires_removed_ones() -> None:
    """set_routes keeps known states; a removed folder's target still serves its batches."""
    a, b = ScriptedTarget("jet"), ScriptedTarget("jet")
    routes = {"a": Route(a, "J"), "b": Route(b, "J")}
    reg = TargetRegistry(routes)
    await reg.check_all()
    reg.set_routes({"a": routes["a"], "c": Route(ScriptedTarget("jetstream"), "d")})
    assert reg.status("a").usable
    assert reg.status("c").ident is None
    assert reg.target("b") is b  # removed: kept for what is in flight
    assert reg.status("b").problem == "not configured"
    assert reg.kinds() == ["jet", "jetstream"]
    reg.set_routes({"b": Route(b, "J")})
    assert reg.target("b") is b
    assert reg.target("a") is a
    assert reg.target("nowhere") is None


async def test_readiness_reasons_name_each_kind_and_folder() -> None:
    """Reasons say which API is down and which job, job config or destination is unusable."""
    jet = ScriptedTarget("jet", TargetStatus(False, True, "", "job-9"))
    im = ScriptedTarget(
        "integration-manager", TargetStatus(False, problem="job config '7' not found")
    )
    js = ScriptedTarget("jetstream", TransportError("refused"))
    reg = registry({"a": (jet, "Job"), "b": (im, "7"), "c": (js, "dest:8886/")})
    reasons = views.readiness(stopping=False, targets=reg, intakes={}).reasons
    assert "Jet API: not logged in yet" in reasons
    await reg.check_all()
    verdict = views.readiness(stopping=False, targets=reg, intakes={})
    assert not verdict.ready
    assert verdict.reasons == (
        "JetStream server unreachable: refused",
        "job 'Job' (job-9) is paused: its batches are held",
        "job config '7': job config '7' not found",
        "destination 'dest:8886/': not resolved yet",
    )
    api = views.api_json(reg)
    assert api["ok"] is False
    assert api["targets"]["jet"] == {"ok": True, "problem": ""}
    assert views.status_line(reg, {"DONE": 2}) == "api down; paused: Job; done=2"
    jobs = views.jobs_json(reg)
    assert [j["target"] for j in jobs] == ["jet", "integration-manager", "jetstream"]
