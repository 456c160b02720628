"""In-doubt batches (SUBMITTING after a crash or a lost answer): never copied twice.

On the real API (the default emulator) a lost POST cannot be looked up: the batch is sent
again once nothing that may be its first delivery is copying, and Jet skips what arrived.
Where an API lists a job's deliveries and shows their objects (the ``assumed_job``
emulator, since the adoption path needs that), the delivery is adopted instead.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import structlog

from jetwatch.domain.states import BatchState
from jetwatch.emulators.jet import EmulatorServer
from jetwatch.ledger.sqlite import SqliteLedger
from jetwatch.metrics import REGISTRY
from tests.fixtures.emulator import Api, ApiFor
from tests.fixtures.pipeline import (
    all_done,
    batch_state_is,
    copy_counts,
    duplicates,
    emulator_stats,
    in_doubt_batch,
    make_settings,
    outcomes_known,
    path_counts,
    received,
    running_daemon,
    second_copies,
    set_faults,
    wait_arrived,
    wait_true,
    write_file,
)

Job = tuple[EmulatorServer, str, Path, Path]
POST_ROUTE = "POST /v1/jobs/{jobId}/deliveries"


def objects(src: Path, names: list[str]) -> list[dict[str, object]]:
    return [{"relativePath": "/" + n, "sizeInBytes": (src / n).stat().st_size} for n in names]


async def posts(server: EmulatorServer) -> int:
    return int((await emulator_stats(server))["requests"].get(POST_ROUTE, 0))


async def test_in_doubt_batch_received_by_jet_is_adopted(
    assumed_job: Job, api_for: ApiFor, tmp_path: Path
) -> None:
    """SUBMITTING with the delivery on the job: adopted and followed, not posted again."""
    server, job_id, src, _ = assumed_job
    api = await api_for(server)
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id)
    names = ["a.txt", "b.txt"]
    for n in names:
        write_file(src / n, n.encode() * 100)
    batch_id = await in_doubt_batch(
        settings.ledger.path, settings.folders[0].label, src, job_id, names
    )
    # An unrelated delivery on the same job must not be mistaken for this batch.
    write_file(src / "other.txt", b"other")
    await api.deliver(job_id, objects(src, ["other.txt"]))
    created = await api.deliver(job_id, objects(src, names))
    async with running_daemon(settings) as daemon:
        await wait_true(lambda: all_done(daemon, len(names)), what="adopted batch done")
        batch = await daemon.ledger.batch(batch_id)
    assert batch.state == BatchState.COMPLETED
    assert batch.delivery_id == created["deliveryId"]
    assert await posts(server) == 2  # the two made by this test, none by the daemon
    assert path_counts(await received(server))["/a.txt"] == 1


async def test_in_doubt_batch_never_received_is_posted_once(
    emulator_job: Job, tmp_path: Path
) -> None:
    """SUBMITTING with no such delivery on the job: posted exactly once."""
    server, job_id, src, dst = emulator_job
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id)
    names = ["x/one.bin", "x/two.bin", "three.bin"]
    for n in names:
        write_file(src / n, os.urandom(3000))
    await in_doubt_batch(settings.ledger.path, settings.folders[0].label, src, job_id, names)
    async with running_daemon(settings) as daemon:
        await wait_arrived(src, dst, names)
        await wait_true(lambda: all_done(daemon, len(names)), what="done")
    assert path_counts(await received(server)) == {"/" + n: 1 for n in names}
    assert await posts(server) == 1


async def test_in_doubt_batch_with_vanished_file_is_adopted(
    assumed_job: Job, api_for: ApiFor, tmp_path: Path
) -> None:
    """A file that vanished before the POST was not in it: the delivery still matches."""
    server, job_id, src, _ = assumed_job
    api = await api_for(server)
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id)
    label = settings.folders[0].label
    names = ["keep.txt", "vanish.txt"]
    for n in names:
        write_file(src / n, n.encode())
    batch_id = await in_doubt_batch(settings.ledger.path, label, src, job_id, names)
    async with await SqliteLedger.open(settings.ledger.path) as ledger:
        # The deliverer found vanish.txt gone, marked it, then posted the rest and crashed.
        [vanished] = [f for f in await ledger.batch_files(batch_id) if f.relpath == "vanish.txt"]
        await ledger.mark_gone([vanished.id], time.time())
    (src / "vanish.txt").unlink()
    await api.deliver(job_id, objects(src, ["keep.txt"]))
    async with running_daemon(settings) as daemon:
        await wait_true(lambda: all_done(daemon, 1), what="adopted batch done")
        assert (await daemon.ledger.batch(batch_id)).state == BatchState.COMPLETED
    assert await posts(server) == 1
    assert path_counts(await received(server)) == {"/keep.txt": 1}


async def test_lost_answer_then_unreachable_api_is_resolved_later(
    assumed_job: Job, tmp_path: Path
) -> None:
    """A POST dropped after it took effect, while Jet cannot even be asked: adopted later."""
    server, job_id, src, dst = assumed_job
    settings = make_settings(
        server.url, src, tmp_path / "ledger.db", job_id, jet={"max_retries": 1}
    )
    with structlog.testing.capture_logs() as logs:
        async with running_daemon(settings) as daemon:
            await wait_true(
                lambda: daemon.registry.status(settings.folders[0].label).usable,
                what="job resolved",
            )
            # Every request from now on takes effect, but its answer is lost.
            await set_faults(server, drop_rate=1.0, drop_phase="after")
            write_file(src / "doubt.txt", b"in doubt")

            def unresolved() -> bool:
                return any(e["event"] == "in_doubt_unresolved" for e in logs)

            await wait_true(unresolved, what="resolution attempted and failed")
            assert len(await daemon.ledger.in_doubt_batches()) == 1
            await set_faults(server)
            await wait_arrived(src, dst, ["doubt.txt"])
            await wait_true(lambda: all_done(daemon, 1), what="done")
    assert any(e["event"] == "in_doubt_adopted" for e in logs)
    assert path_counts(await received(server)) == {"/doubt.txt": 1}


async def test_random_lost_answers_never_duplicate(assumed_job: Job, tmp_path: Path) -> None:
    """A third of all answers lost after the request took effect: still each file once."""
    server, job_id, src, dst = assumed_job
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id, max_files=3)
    names = [f"d/{i:02d}.dat" for i in range(18)]
    with structlog.testing.capture_logs() as logs:
        async with running_daemon(settings) as daemon:
            await set_faults(server, drop_rate=0.3, drop_phase="after", seed=3)
            for i, rel in enumerate(names):
                write_file(src / rel, os.urandom(500 + i))
                if i % 3 == 2:
                    await asyncio.sleep(0.3)
            await wait_arrived(src, dst, names, timeout_s=60)
            await wait_true(lambda: all_done(daemon, len(names)), timeout_s=30, what="done")
            await set_faults(server)
    deliveries = await received(server)
    assert duplicates(deliveries) == {}
    assert set(path_counts(deliveries)) == {"/" + n for n in names}
    assert (await emulator_stats(server))["dropped"] > 0
    doubts = [e for e in logs if e["event"] == "delivery_outcome_unknown"]
    adopted = [e for e in logs if e["event"] == "in_doubt_adopted"]
    assert len(adopted) == len(doubts)


async def test_in_doubt_batch_of_a_deleted_job_ends_held_and_visible(
    emulator_job: Job, api: Api, tmp_path: Path
) -> None:
    """The job vanished while a batch was in doubt: the batch is held with a reason, not stuck."""
    server, job_id, src, _ = emulator_job
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id)
    write_file(src / "orphan.txt", b"orphan")
    batch_id = await in_doubt_batch(
        settings.ledger.path, settings.folders[0].label, src, job_id, ["orphan.txt"]
    )
    await api.ok("DELETE", f"/v1/jobs/{job_id}")
    async with running_daemon(settings) as daemon:
        await wait_true(lambda: batch_state_is(daemon, batch_id, BatchState.HELD), what="held")
        [held] = (await daemon.status_json())["held"]
    assert held["batch_id"] == batch_id
    assert "job" in held["reason"]
    assert await received(server) == []


async def test_submitting_is_recorded_before_the_post_arrives(
    emulator_job: Job, tmp_path: Path
) -> None:
    """While the POST is still on its way (the emulator holds it 1.5 s before acting), the
    ledger already says SUBMITTING: a crash then leaves it in doubt, never forgotten."""
    server, job_id, src, dst = emulator_job
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id)
    async with running_daemon(settings) as daemon:
        await set_faults(server, latency_ms=1500, latency_phase="before")
        write_file(src / "a.bin", b"a")

        async def submitting() -> bool:
            return bool(await daemon.ledger.in_doubt_batches())

        await wait_true(submitting, what="SUBMITTING in the ledger")
        assert await received(server) == []  # the POST has not acted yet
        await set_faults(server)
        await wait_arrived(src, dst, ["a.bin"])
        await wait_true(lambda: all_done(daemon, 1), what="done")
    assert path_counts(await received(server)) == {"/a.bin": 1}


async def test_in_doubt_batch_received_by_the_real_api_is_sent_again_and_skipped(
    emulator_job: Job, api: Api, tmp_path: Path
) -> None:
    """The default emulator cannot show the delivery: once it is over the batch is sent
    again, Jet skips both files, the destination copies stay the first ones."""
    server, job_id, src, dst = emulator_job
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id)
    names = ["a.txt", "b.txt"]
    for n in names:
        write_file(src / n, n.encode() * 100)
    await in_doubt_batch(settings.ledger.path, settings.folders[0].label, src, job_id, names)
    await api.wait_delivery(job_id, (await api.deliver(job_id, objects(src, names)))["deliveryId"])
    inodes = {n: (dst / n).stat().st_ino for n in names}
    async with running_daemon(settings) as daemon:
        await wait_true(lambda: all_done(daemon, len(names)), what="done")
    deliveries = await outcomes_known(server)
    assert len(deliveries) == 2
    assert [o["outcome"] for o in deliveries[1]["objects"]] == ["skipped", "skipped"]
    assert second_copies(deliveries) == {}
    assert {n: (dst / n).stat().st_ino for n in names} == inodes  # never replaced


async def test_random_lost_answers_on_the_real_api_copy_nothing_twice(
    emulator_job: Job, tmp_path: Path
) -> None:
    """A third of the POSTs' answers lost after Jet acted on them, nothing to look up: each
    file arrives, copied exactly once; the lost ones went out a second time, skipped."""
    server, job_id, src, dst = emulator_job
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id, max_files=3)
    names = [f"d/{i:02d}.dat" for i in range(18)]
    with structlog.testing.capture_logs() as logs:
        async with running_daemon(settings) as daemon:
            await set_faults(server, drop_rate=0.3, drop_phase="after", seed=3, methods=["POST"])
            for i, rel in enumerate(names):
                write_file(src / rel, os.urandom(500 + i))
                if i % 3 == 2:
                    await asyncio.sleep(0.3)
            await wait_arrived(src, dst, names, timeout_s=60)
            await wait_true(lambda: all_done(daemon, len(names)), timeout_s=40, what="done")
            await set_faults(server)
    deliveries = await outcomes_known(server)
    assert copy_counts(deliveries) == {"/" + n: 1 for n in names}
    assert (await emulator_stats(server))["dropped"] > 0
    doubts = [e for e in logs if e["event"] == "delivery_outcome_unknown"]
    resent = [e for e in logs if e["event"] == "delivery_post_failed" and "in doubt" in e["error"]]
    assert doubts
    assert len(resent) <= len(doubts)


async def test_batch_waiting_in_doubt_shows_in_status_and_metrics(
    emulator_job: Job, tmp_path: Path
) -> None:
    """While an in-doubt batch waits, the daemon's status lists it and the gauge counts it;
    nothing is posted meanwhile."""
    server, job_id, src, _ = emulator_job
    settings = make_settings(
        server.url, src, tmp_path / "ledger.db", job_id, jet={"in_doubt_grace_seconds": 60}
    )
    write_file(src / "wait.txt", b"w")
    batch_id = await in_doubt_batch(
        settings.ledger.path, settings.folders[0].label, src, job_id, ["wait.txt"]
    )
    async with running_daemon(settings) as daemon:

        async def listed() -> bool:
            return bool((await daemon.status_json())["in_doubt"])

        await wait_true(listed, what="in doubt shown")
        [shown] = (await daemon.status_json())["in_doubt"]
        assert (shown["batch_id"], shown["in_flight"]) == (batch_id, None)
        assert REGISTRY.get_sample_value("jetwatch_in_doubt_waiting") == 1
    assert await received(server) == []
