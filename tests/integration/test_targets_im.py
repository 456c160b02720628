"""IntegrationManagerTarget on the real IM emulator: runs, failures, tokens, faults, in-doubt."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from jetwatch.apis.im.client import IntegrationManagerClient
from jetwatch.apis.im.models import JobRun
from jetwatch.config.targets import IntegrationManagerSettings, VariableSource
from jetwatch.domain.target import Lookup, Progress, SubmitObject, Target, batch_token
from jetwatch.emulators.im import ImEmulatorServer
from jetwatch.errors import NotFoundError, OutcomeUnknownError, PausedError
from jetwatch.targets.im import IntegrationManagerTarget, client_from_settings, judge_run
from tests.fixtures.emulator import wait_for
from tests.fixtures.im_helpers import IM_PASSWORD, IM_USER, ImApi, InstantSleep

MakeTarget = Callable[..., IntegrationManagerTarget]


@pytest.fixture
async def make_target(im_server: ImEmulatorServer) -> AsyncIterator[MakeTarget]:
    """Targets on the im_server emulator, each with its own client; closed after the test."""
    made: list[IntegrationManagerTarget] = []

    def build(config_id: str, **options: Any) -> IntegrationManagerTarget:
        client = IntegrationManagerClient(
            im_server.url, IM_USER, SecretStr(IM_PASSWORD), sleep=InstantSleep(), max_retries=8
        )
        target = IntegrationManagerTarget(client, config_id, **options)
        made.append(target)
        return target

    yield build
    for target in made:
        await target.aclose()


@pytest.fixture
def files(tmp_path: Path) -> list[SubmitObject]:
    folder = tmp_path / "watched"
    (folder / "day1").mkdir(parents=True)
    (folder / "a.csv").write_text("a,1\n")
    (folder / "day1" / "b.csv").write_text("b,2\n")
    return [
        SubmitObject("a.csv", str(folder / "a.csv"), 4),
        SubmitObject("day1/b.csv", str(folder / "day1" / "b.csv"), 4),
    ]


async def finish(target: IntegrationManagerTarget, handle: str, objects: int) -> Progress:
    async def done() -> Progress | None:
        progress = await target.poll(handle, objects, 0.0)
        return progress if progress.done else None

    return await wait_for(done)


async def test_check_reports_ready_paused_and_missing(
    im_api: ImApi, make_target: MakeTarget
) -> None:
    """An active config is ready; an inactive one is paused; an unknown one a problem."""
    active, inactive = await im_api.config(), await im_api.config("off", active=False)
    target = make_target(active)
    assert isinstance(target, Target)
    status = await target.check()
    assert (status.ready, status.paused, status.problem, status.ident) == (True, False, "", active)
    paused = await make_target(inactive).check()
    assert (paused.ready, paused.paused) == (False, True)
    missing = await make_target("999").check()
    assert not missing.ready
    assert "not found" in missing.problem


async def test_batch_runs_and_its_files_are_processed(
    im_api: ImApi, make_target: MakeTarget, files: list[SubmitObject], tmp_path: Path
) -> None:
    """One run per batch; it finishes, every file is copied, variables follow the template."""
    target = make_target(await im_api.config())
    handle = await target.submit(files)
    progress = await finish(target, handle, 2)
    assert (progress.done, progress.failed, progress.state, progress.transferred) == (
        True,
        False,
        "FINISHED",
        2,
    )
    assert (tmp_path / "im-out" / "a.csv").read_text() == "a,1\n"
    assert (tmp_path / "im-out" / "b.csv").read_text() == "b,2\n"
    run = (await im_api.admin("GET", "runs"))["items"][0]
    assert run["id"] == handle
    assert run["variables"] == {
        "JETWATCH_FILES": f"{files[0].local_path}\n{files[1].local_path}",
        "JETWATCH_FILE_COUNT": "2",
        "JETWATCH_BATCH": batch_token(files),
    }


async def test_custom_template_and_body_key(
    im_api: ImApi, make_target: MakeTarget, files: list[SubmitObject]
) -> None:
    """The variables template picks names and sources; JSON lists work for the run too."""
    template = {
        "JETWATCH_FILES": VariableSource.FILES_JSON,
        "REL": VariableSource.RELPATHS_LINES,
        "BYTES": VariableSource.TOTAL_BYTES,
    }
    target = make_target(await im_api.config(), variables=template)
    progress = await finish(target, await target.submit(files), 2)
    assert not progress.failed
    variables = (await im_api.admin("GET", "runs"))["items"][0]["variables"]
    assert json.loads(variables["JETWATCH_FILES"]) == [str(f.local_path) for f in files]
    assert (variables["REL"], variables["BYTES"]) == ("a.csv\nday1/b.csv", "8")


async def test_failed_run_fails_the_batch_with_its_message(
    im_api: ImApi, make_target: MakeTarget, files: list[SubmitObject]
) -> None:
    """A FAILED run (fail_paths) is a failed batch whose detail carries errorMessage."""
    await im_api.admin("POST", "faults", {"fail_paths": ["*b.csv"]})
    target = make_target(await im_api.config())
    progress = await finish(target, await target.submit(files), 2)
    assert (progress.done, progress.failed, progress.failed_count) == (True, True, 2)
    assert "injected failure" in progress.detail


async def test_cancelled_and_unknown_statuses(
    im_api: ImApi, make_target: MakeTarget, files: list[SubmitObject]
) -> None:
    """CANCELLED fails the batch; an unknown status waits until the run timeout."""
    target = make_target(await im_api.config(), run_timeout_s=60.0)
    await im_api.admin("POST", "hold", {"hold": True})
    cancelled, odd = await target.submit(files[:1]), await target.submit(files[1:])
    await im_api.admin("POST", f"runs/{cancelled}/status", {"status": "CANCELLED"})
    await im_api.admin("POST", f"runs/{odd}/status", {"status": "ON_HOLD"})
    progress = await target.poll(cancelled, 1, 0.0)
    assert (progress.done, progress.failed, progress.state) == (True, True, "CANCELLED")
    assert (await target.poll(odd, 1, 59.0)).done is False
    late = await target.poll(odd, 1, 61.0)
    assert (late.done, late.failed) == (True, True)
    assert "no terminal status" in late.detail
    with pytest.raises(NotFoundError):
        await target.poll("no-such-run", 1, 0.0)


async def test_inactive_config_holds_the_batch(
    im_api: ImApi, make_target: MakeTarget, files: list[SubmitObject]
) -> None:
    """Submitting to an inactive job config raises PausedError; no run is made."""
    target = make_target(await im_api.config(active=False))
    with pytest.raises(PausedError):
        await target.submit(files)
    assert (await im_api.admin("GET", "runs"))["items"] == []


async def test_expired_session_logs_in_again(
    im_api: ImApi, make_target: MakeTarget, files: list[SubmitObject]
) -> None:
    """Tokens expiring between submit and poll cost a re-login, not a failed batch."""
    target = make_target(await im_api.config())
    handle = await target.submit(files)
    await im_api.admin("POST", "tokens/expire", {"refresh": True})
    assert not (await finish(target, handle, 2)).failed


async def test_rate_limited_burst_still_delivers_each_batch_once(
    im_api: ImApi, make_target: MakeTarget, files: list[SubmitObject]
) -> None:
    """Under 50 % 429 answers every batch still runs exactly once."""
    target = make_target(await im_api.config())
    await target.check()
    await im_api.admin("POST", "faults", {"status_rates": {"429": 0.5}, "seed": 7})
    handles = [await target.submit([f]) for f in files]
    for handle in handles:
        assert not (await finish(target, handle, 1)).failed
    await im_api.admin("POST", "faults", {})
    assert sorted(r["id"] for r in (await im_api.admin("GET", "runs"))["items"]) == sorted(handles)


async def test_lost_answer_is_resolved_by_find_submission(
    im_api: ImApi, make_target: MakeTarget, files: list[SubmitObject]
) -> None:
    """Dropped after the run started: outcome unknown, then find_submission adopts that run."""
    target = make_target(await im_api.config())
    await target.check()
    await im_api.admin("POST", "faults", {"drop_rate": 1.0, "drop_phase": "after"})
    with pytest.raises(OutcomeUnknownError):
        await target.submit(files)
    await im_api.admin("POST", "faults", {})
    run_id = (await im_api.admin("GET", "runs"))["items"][0]["id"]
    assert await target.find_submission(files, set()) == Lookup.found(run_id)
    assert await target.find_submission(files, {run_id}) == Lookup.not_received()
    assert await target.find_submission(files[:1], set()) == Lookup.not_received()


async def test_request_lost_before_the_server_saw_it_is_not_found(
    im_api: ImApi, make_target: MakeTarget, files: list[SubmitObject]
) -> None:
    """Dropped before the run was made: outcome unknown, find_submission says it never ran."""
    target = make_target(await im_api.config())
    await target.check()
    await im_api.admin("POST", "faults", {"drop_rate": 1.0, "drop_phase": "before"})
    with pytest.raises(OutcomeUnknownError):
        await target.submit(files)
    await im_api.admin("POST", "faults", {})
    assert await target.find_submission(files, set()) == Lookup.not_received()
    handle = await target.submit(files)
    assert not (await finish(target, handle, 2)).failed


def test_from_settings_builds_a_target() -> None:
    """The settings section gives a target with its template and job config."""
    settings = IntegrationManagerSettings(
        base_url="http://127.0.0.1:1/",
        username=IM_USER,
        password=SecretStr(IM_PASSWORD),
        job_config="44",
        variables={"F": VariableSource.FILES_LINES},
    )
    client = client_from_settings(settings, SecretStr(IM_PASSWORD))
    target = IntegrationManagerTarget.from_settings(settings, client)
    assert target.kind == "integration-manager"
    assert target.variables_of([SubmitObject("a", "/x/a", 1)]) == {"F": "/x/a"}
    assert "'44'" in repr(target)
    own = IntegrationManagerTarget.from_settings(settings, client, job_config="45")
    assert "'45'" in repr(own)
    with pytest.raises(ValueError, match="job config"):
        IntegrationManagerTarget.from_settings(
            settings.model_copy(update={"job_config": None}), client
        )


@pytest.mark.parametrize(
    ("status", "age_s", "expected"),
    [
        ("QUEUED", 0.0, (False, False)),
        ("RUNNING", 0.0, (False, False)),
        ("FINISHED", 0.0, (True, False)),
        ("FAILED", 0.0, (True, True)),
        ("CANCELLED", 0.0, (True, True)),
        ("SOMETHING_ELSE", 10.0, (False, False)),
        ("RUNNING", 100.0, (True, True)),
        (None, 100.0, (True, True)),
    ],
)
def test_judge_run(status: str | None, age_s: float, expected: tuple[bool, bool]) -> None:
    """FINISHED succeeds for every file; FAILED/CANCELLED fail; the rest wait for the timeout."""
    progress = judge_run(JobRun(id="r", status=status), 3, age_s, 60.0)
    assert (progress.done, progress.failed) == expected
    assert progress.transferred == (3 if expected == (True, False) else 0)
