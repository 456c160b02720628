"""JetTarget against the real Jet emulator: resolve, deliver, follow, fail, pause, in-doubt."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from jetwatch.apis.jet.client import JetClient
from jetwatch.apis.jet.models import Counts, Delivery
from jetwatch.apis.jet.models import Progress as JetProgress
from jetwatch.config.settings import FolderSettings
from jetwatch.domain.target import Lookup, Progress, SubmitObject, Target
from jetwatch.emulators.jet import Assumptions, EmulatorServer
from jetwatch.errors import ConfigError, NotFoundError, PausedError
from jetwatch.targets.jet import JetTarget, judge_delivery, relative_path
from jetwatch.targets.registry import Route, TargetRegistry
from tests.fixtures.emulator import (
    ADMIN_ID,
    ADMIN_SECRET,
    Api,
    ApiFor,
    EmulatorFactory,
    make_manual_job,
    wait_for,
)

JobSetup = tuple[EmulatorServer, str, Path, Path]


def write(folder: Path, relpath: str, data: bytes) -> SubmitObject:
    path = folder / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return SubmitObject(relpath, str(path), len(data))


async def fresh_target(server: EmulatorServer, job: str, root: Path) -> JetTarget:
    client = JetClient(server.url, ADMIN_ID, SecretStr(ADMIN_SECRET), sleep=_no_wait)
    return JetTarget(client, job, root, delivery_timeout_s=60.0)


async def _no_wait(delay_s: float) -> None:
    await asyncio.sleep(0)


@pytest.fixture
async def target(emulator_job: JobSetup) -> AsyncIterator[JetTarget]:
    server, job_id, src, _ = emulator_job
    made = await fresh_target(server, job_id, src)
    yield made
    await made.aclose()


async def finish(target: JetTarget, handle: str, objects: int) -> Progress:
    async def done() -> Progress | None:
        progress = await target.poll(handle, objects, 0.0)
        return progress if progress.done else None

    return await wait_for(done, timeout_s=15.0, interval_s=0.05)


async def test_check_resolves_the_job_by_id_and_by_name(
    emulator_job: JobSetup, target: JetTarget
) -> None:
    """check() is ready with the job id as ident, whether the folder names the id or the name."""
    server, job_id, src, _ = emulator_job
    assert isinstance(target, Target)
    status = await target.check()
    assert (status.ready, status.paused, status.problem, status.ident) == (True, False, "", job_id)
    by_name = await fresh_target(server, "Manual Job", src)
    try:
        assert (await by_name.check()).ident == job_id
    finally:
        await by_name.aclose()


async def test_batch_is_delivered_relative_to_the_profile_root(
    emulator_job: JobSetup, target: JetTarget
) -> None:
    """A folder below the profile root keeps its prefix in relativePath; files arrive."""
    _, _, src, dst = emulator_job
    folder = src / "cams"
    objects = [write(folder, "a.mov", b"A" * 300), write(folder, "deep/b.wav", b"B")]
    handle = await target.submit(objects)
    progress = await finish(target, handle, 2)
    assert (progress.done, progress.failed, progress.transferred) == (True, False, 2)
    assert progress.bytes_done == 301
    assert (dst / "cams" / "a.mov").read_bytes() == b"A" * 300
    assert (dst / "cams" / "deep" / "b.wav").read_bytes() == b"B"
    again = await finish(target, await target.submit(objects), 2)
    assert (again.failed, again.transferred, again.skipped) == (False, 0, 2)


async def test_failed_objects_fail_the_batch_with_transfer_errors(
    emulator_job: JobSetup, target: JetTarget, api: Api
) -> None:
    """fail_paths makes the delivery fail; the detail carries the transfer's error."""
    server, _, src, _ = emulator_job
    faults = {"fail_paths": ["*bad*"]}
    async with api.session.post(f"{server.url}/_emulator/faults", json=faults) as response:
        assert response.status == 200
    objects = [write(src, "ok.mov", b"ok"), write(src, "bad.mov", b"no")]
    progress = await finish(target, await target.submit(objects), 2)
    assert (progress.done, progress.failed, progress.failed_count) == (True, True, 1)
    assert "fail_paths matched" in progress.detail


async def test_paused_job_reads_paused_and_refuses_batches(
    emulator_job: JobSetup, target: JetTarget, api: Api
) -> None:
    """A paused job is not ready (paused, no problem) and a submit raises PausedError."""
    _, job_id, src, _ = emulator_job
    await api.ok("PATCH", f"/v1/jobs/{job_id}", {"paused": True})
    status = await target.check()
    assert (status.ready, status.paused, status.problem) == (False, True, "")
    with pytest.raises(PausedError):
        await target.submit([write(src, "x.mov", b"x")])
    await api.ok("PATCH", f"/v1/jobs/{job_id}", {"paused": False})
    assert (await target.check()).ready


async def test_unknown_job_is_a_problem(emulator_job: JobSetup) -> None:
    """A job reference matching nothing: check names the problem, submit is NotFoundError."""
    server, _, src, _ = emulator_job
    target = await fresh_target(server, "no such job", src)
    try:
        status = await target.check()
        assert not status.ready
        assert "no job with id or name" in status.problem
        with pytest.raises(NotFoundError):
            await target.submit([write(src, "x.mov", b"x")])
    finally:
        await target.aclose()


async def assumed_target(
    factory: EmulatorFactory, tmp_path: Path, **assume: bool
) -> tuple[EmulatorServer, JetTarget, Path]:
    """A job on an emulator with the given --assume-* conveniences, and a target for it."""
    server = await factory(assume=Assumptions(**assume))
    job_id, src, _ = await make_manual_job(server, tmp_path)
    return server, await fresh_target(server, job_id, src), src


async def test_find_submission_adopts_only_unknown_matching_deliveries(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Where the API lists a job's deliveries and shows their objects (assumed; this path
    needs it): the one with exactly these objects is adopted unless already known, and a
    complete list without it proves the POST never arrived."""
    _, target, src = await assumed_target(
        emulator_factory, tmp_path, job_deliveries=True, delivery_objects=True
    )
    try:
        objects = [write(src, "one.mov", b"1"), write(src, "two.mov", b"2")]
        handle = await target.submit(objects)
        assert await target.find_submission(objects, set()) == Lookup.found(handle)
        assert await target.find_submission(objects, {handle}) == Lookup.not_received()
        assert await target.find_submission(objects[:1], set()) == Lookup.not_received()
        # Same names, another version (size): not this batch's delivery.
        changed = [SubmitObject(o.relpath, o.local_path, o.size + 1) for o in objects]
        assert await target.find_submission(changed, set()) == Lookup.not_received()
    finally:
        await target.aclose()


async def test_find_submission_covers_any_number_of_unknown_deliveries(
    emulator_factory: EmulatorFactory, tmp_path: Path, api_for: ApiFor
) -> None:
    """The lost delivery is found among 130 unknown ones wherever it sits in the job's list
    (the list's order is not documented), not only among the first or last 50."""
    server, target, src = await assumed_target(
        emulator_factory, tmp_path, job_deliveries=True, delivery_objects=True
    )
    api = await api_for(server)
    job_id = (await target.check()).ident
    try:
        ours = [write(src, "ours.mov", b"ours")]
        write(src, "other.mov", b"o")
        for i in range(130):
            if i == 65:
                handle = await target.submit(ours)
            else:
                await api.deliver(str(job_id), [{"relativePath": "/other.mov"}])
        assert await target.find_submission(ours, set()) == Lookup.found(handle)
    finally:
        await target.aclose()


async def test_find_submission_adopts_by_per_file_records(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Where the API has per-file records (assumed: GET /v1/jobs/{id}/files), the delivery
    whose files are exactly these is adopted once they are recorded."""
    _, target, src = await assumed_target(emulator_factory, tmp_path, job_files=True)
    try:
        objects = [write(src, "a.mov", b"a"), write(src, "b/c.mov", b"c")]
        handle = await target.submit(objects)
        await finish(target, handle, 2)
        assert await target.find_submission(objects, set()) == Lookup.found(handle)
        assert (await target.find_submission(objects, {handle})).handle is None
    finally:
        await target.aclose()


async def test_find_submission_on_the_real_api_names_what_may_be_it(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """The known API cannot be asked: unproven, with the in-progress transfers of deliveries
    jetwatch does not know (those of known deliveries never count); none once it is over."""
    server = await emulator_factory(bandwidth_bps=50_000)
    job_id, src, _ = await make_manual_job(server, tmp_path)
    target = await fresh_target(server, job_id, src)
    try:
        objects = [write(src, "slow.mov", b"s" * 100_000)]  # about 2 s of copying
        handle = await target.submit(objects)

        async def copying() -> bool | None:
            return True if await target.is_moving(handle) else None

        await wait_for(copying, timeout_s=5)
        lookup = await target.find_submission(objects, set())
        assert (lookup.handle, lookup.absent, len(lookup.in_flight)) == (None, False, 1)
        assert (await target.find_submission(objects, {handle})).in_flight == frozenset()
        await finish(target, handle, 1)
        assert not await target.is_moving(handle)
        after = await target.find_submission(objects, set())
        assert (after.handle, after.absent, after.in_flight) == (None, False, frozenset())
    finally:
        await target.aclose()


async def test_file_outside_the_profile_root_is_a_config_error(
    emulator_job: JobSetup, target: JetTarget, tmp_path: Path
) -> None:
    """A file that is not under the profile root cannot be named to Jet."""
    outside = write(tmp_path / "elsewhere", "x.mov", b"x")
    with pytest.raises(ConfigError):
        await target.submit([outside])


def test_relative_path_has_a_leading_slash(tmp_path: Path) -> None:
    """relativePath is posix, relative to the profile root, with a leading '/'."""
    assert relative_path(tmp_path, tmp_path / "a" / "b.mov") == "/a/b.mov"
    assert relative_path(tmp_path / "x" / "..", tmp_path / "c.mov") == "/c.mov"


def _delivery(
    state: str | None, transferred: int = 0, skipped: int = 0, failed: int = 0
) -> Delivery:
    summary = JetProgress(
        transferred=Counts(count=transferred, size_bytes=10 * transferred),
        skipped=Counts(count=skipped),
        failed=Counts(count=failed),
    )
    return Delivery(delivery_id="d", state=state, summary=summary)


@pytest.mark.parametrize(
    ("delivery", "age_s", "expected"),
    [
        (_delivery("COMPLETED", transferred=2, skipped=1), 0.0, (True, False)),
        (_delivery("COMPLETED", transferred=2), 0.0, (True, True)),
        (_delivery("COMPLETED", transferred=2, skipped=1, failed=1), 0.0, (True, True)),
        (_delivery("FAILED"), 0.0, (True, True)),
        (_delivery("IN_PROGRESS", transferred=1), 0.0, (False, False)),
        (_delivery("SOMETHING_NEW"), 59.0, (False, False)),
        (_delivery("SOMETHING_NEW"), 61.0, (True, True)),
    ],
)
def test_judge_delivery(delivery: Delivery, age_s: float, expected: tuple[bool, bool]) -> None:
    """Success needs transferred + skipped ≥ objects and no failure; unknown states wait."""
    progress = judge_delivery(delivery, 3, age_s, 60.0)
    assert (progress.done, progress.failed) == expected
    assert progress.transferred == delivery.summary.transferred.count


async def test_folders_sharing_a_job_ask_for_it_once_a_round(emulator_job: JobSetup) -> None:
    """Five folders on one job, one client: a registry round reads the job list, the job and
    the storage profiles once for all of them; the next round reads them afresh."""
    server, job_id, src, _ = emulator_job
    client = JetClient(server.url, ADMIN_ID, SecretStr(ADMIN_SECRET), sleep=_no_wait)
    targets = {}
    for i in range(5):
        folder = FolderSettings(path=src / f"f{i}", job="Manual Job", name=f"f{i}")
        targets[f"f{i}"] = JetTarget(client, "Manual Job", src, folder=folder, close_client=False)
    registry = TargetRegistry({label: Route(t, "Manual Job") for label, t in targets.items()})
    routes = ("GET /v1/jobs", "GET /v1/jobs/{jobId}", "GET /v1/storageProfiles")
    try:
        before = {route: server.stats.by_route[route] for route in routes}
        assert await registry.check_all()
        assert all(registry.status(label).ident == job_id for label in targets)
        once = {route: server.stats.by_route[route] - before[route] for route in routes}
        assert once == dict.fromkeys(routes, 1)
        assert await registry.check_all()
        twice = {route: server.stats.by_route[route] - before[route] for route in routes}
        assert twice == dict.fromkeys(routes, 2)
        # Outside a round every call asks (a delivery's own reads stay fresh).
        await client.get_job(job_id)
        await client.get_job(job_id)
        assert server.stats.by_route["GET /v1/jobs/{jobId}"] - before[routes[1]] == 4
    finally:
        await client.close()
