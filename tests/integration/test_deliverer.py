"""The deliver loop's pieces: object paths, the on-disk check, wake-ups, garbled POST answers."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import SecretStr

from jetwatch.apis.jet.client import JetClient
from jetwatch.apis.jet.models import Delivery, DeliveryObject
from jetwatch.config.settings import FolderSettings
from jetwatch.domain.states import BatchState, FileKey, FileRow, FileState
from jetwatch.domain.wake import Wakeups
from jetwatch.emulators.jet import Assumptions, EmulatorServer
from jetwatch.errors import ProtocolError
from jetwatch.ledger.sqlite import SqliteLedger
from jetwatch.pipeline.deliverer import Deliverer, check_files
from jetwatch.targets.jet import JetTarget, relative_path
from jetwatch.targets.registry import Route, TargetRegistry
from tests.fixtures.clock import FakeClock
from tests.fixtures.emulator import (
    ADMIN_ID,
    ADMIN_SECRET,
    EmulatorFactory,
    make_manual_job,
    wait_for,
)
from tests.fixtures.pipeline import emulator_stats, received

Job = tuple[EmulatorServer, str, Path, Path]


def row(relpath: str, path: Path) -> FileRow:
    st = path.stat()
    return FileRow(
        1, "f", relpath, st.st_size, st.st_mtime_ns, st.st_ino, FileState.BATCHED,
        1, 0, 0.0, 0.0, None, False,
    )  # fmt: skip


def object_path(folder: FolderSettings, relpath: str) -> str:
    return relative_path(folder.root, folder.path / relpath)


def jet_registry(
    client: JetClient, job: str, folder: FolderSettings, **target: float
) -> TargetRegistry:
    """A registry with one Jet folder, as the daemon builds it."""
    jet = JetTarget(client, job, folder.root, folder=folder, close_client=False, **target)
    return TargetRegistry({folder.label: Route(jet, job)})


def test_object_path_is_relative_to_the_profile_root(tmp_path: Path) -> None:
    """relativePath starts with "/" and includes the folder's place under profile_root."""
    plain = FolderSettings(path=tmp_path / "in", job="j")
    assert object_path(plain, "a/b c.mov") == "/a/b c.mov"
    nested = FolderSettings(path=tmp_path / "share" / "in", job="j", profile_root=tmp_path)
    assert object_path(nested, "x.mxf") == "/share/in/x.mxf"


def test_check_files_sorts_present_gone_and_changed(tmp_path: Path) -> None:
    """Unchanged files go out; vanished or rewritten ones are gone (a new version follows)."""
    for name in ("same", "vanished", "changed"):
        (tmp_path / name).write_bytes(b"v1")
    rows = [row(n, tmp_path / n) for n in ("same", "vanished", "changed")]
    (tmp_path / "vanished").unlink()
    (tmp_path / "changed").write_bytes(b"version 2")
    present, gone, problem = check_files(tmp_path, rows)
    assert problem is None
    assert [r.relpath for r in present] == ["same"]
    assert [r.relpath for r in gone] == ["vanished", "changed"]


def test_check_files_judges_nothing_while_the_folder_is_missing(tmp_path: Path) -> None:
    """A missing (or replaced-by-a-file) folder is a problem, never a reason to call files gone."""
    folder = tmp_path / "share"
    folder.mkdir()
    (folder / "a").write_bytes(b"a")
    rows = [row("a", folder / "a")]
    folder.rename(tmp_path / "away")
    assert check_files(folder, rows)[:2] == ([], [])
    assert "share" in (check_files(folder, rows)[2] or "")
    folder.write_bytes(b"not a directory")
    assert "not a directory" in (check_files(folder, rows)[2] or "")


async def test_open_batch_without_a_resolved_job_does_not_spin(
    sqlite_ledger: SqliteLedger, tmp_path: Path
) -> None:
    """While the job is unresolved (API down) the loop sleeps instead of re-running at once."""
    folder = FolderSettings(path=tmp_path, job="not-resolved", name="f")
    now = time.time()
    ids = await sqlite_ledger.add_stable("f", [FileKey("a", 1, 1, 1)], now)
    await sqlite_ledger.create_batch("f", ids, now)
    async with JetClient("http://127.0.0.1:9", ADMIN_ID, SecretStr(ADMIN_SECRET)) as client:
        jobs = jet_registry(client, "not-resolved", folder)
        clock = FakeClock(now + 1.0)
        deliverer = Deliverer(
            sqlite_ledger, jobs, lambda: {"f": folder}, wakeups=Wakeups(), clock=clock
        )
        next_at = await deliverer.run_once()
    assert next_at is None or next_at > clock.monotonic()
    assert [b.state for b in await sqlite_ledger.open_batches(now + 1.0)] == [BatchState.OPEN]


class GarbledClient(JetClient):
    """The POST reaches Jet and creates the delivery, but its answer cannot be parsed."""

    async def create_delivery(self, job_id: str, objects: Sequence[DeliveryObject]) -> Delivery:
        await super().create_delivery(job_id, objects)
        raise ProtocolError("POST /v1/jobs/{jobId}/deliveries: the answer is not JSON")


async def test_garbled_post_answer_is_resolved_not_reposted(
    emulator_factory: EmulatorFactory, sqlite_ledger: SqliteLedger, tmp_path: Path
) -> None:
    """An unreadable answer to the POST is in doubt: where the API lists a job's deliveries
    and shows their objects (assumed: the emulator's --assume-* flags, since the adoption
    path needs them), the delivery is found and adopted."""
    server = await emulator_factory(assume=Assumptions(job_deliveries=True, delivery_objects=True))
    job_id, src, _ = await make_manual_job(server, tmp_path)
    folder = FolderSettings(path=src, job=job_id, name="f")
    (src / "clip.mov").write_bytes(os.urandom(500))
    st = (src / "clip.mov").stat()
    now = time.time()
    ids = await sqlite_ledger.add_stable(
        "f", [FileKey("clip.mov", st.st_size, st.st_mtime_ns, st.st_ino)], now
    )
    batch_id = await sqlite_ledger.create_batch("f", ids, now)
    async with GarbledClient(server.url, ADMIN_ID, SecretStr(ADMIN_SECRET)) as client:
        jobs = jet_registry(client, job_id, folder)
        assert await jobs.check_all()
        deliverer = Deliverer(sqlite_ledger, jobs, lambda: {"f": folder}, wakeups=Wakeups())
        await deliverer.run_once()
        await deliverer.run_once()
    batch = await sqlite_ledger.batch(batch_id)
    [delivery] = await received(server)
    assert (batch.state, batch.delivery_id) == (BatchState.SUBMITTED, delivery["deliveryId"])
    stats = await emulator_stats(server)
    assert stats["requests"]["POST /v1/jobs/{jobId}/deliveries"] == 1


async def test_garbled_post_answer_on_the_real_api_waits_then_resends_once(
    emulator_factory: EmulatorFactory, sqlite_ledger: SqliteLedger, tmp_path: Path
) -> None:
    """The known API cannot be asked: the batch waits while the first delivery is copying,
    is sent again once it is not, and Jet skips the file: two deliveries, one copy."""
    server = await emulator_factory(bandwidth_bps=40_000)  # 60 kB: about 1.5 s of copying
    job_id, src, dst = await make_manual_job(server, tmp_path)
    folder = FolderSettings(path=src, job=job_id, name="f")
    (src / "clip.mov").write_bytes(os.urandom(60_000))
    st = (src / "clip.mov").stat()
    now = time.time()
    key = FileKey("clip.mov", st.st_size, st.st_mtime_ns, st.st_ino)
    batch_id = await sqlite_ledger.create_batch(
        "f", await sqlite_ledger.add_stable("f", [key], now), now
    )
    async with GarbledClient(server.url, ADMIN_ID, SecretStr(ADMIN_SECRET)) as client:
        jobs = jet_registry(client, job_id, folder, in_doubt_grace_s=0.0)
        assert await jobs.check_all()
        deliverer = Deliverer(sqlite_ledger, jobs, lambda: {"f": folder}, wakeups=Wakeups())
        await deliverer.run_once()  # POST (garbled) → in doubt, the first one is copying
        [first] = await received(server)
        assert first["state"] in ("CREATED", "IN_PROGRESS")
        assert [w["batch_id"] for w in deliverer.in_doubt.waiting()] == [batch_id]
        assert (await sqlite_ledger.batch(batch_id)).state == BatchState.SUBMITTING

        async def sent_again() -> bool | None:
            await deliverer.run_once()
            return True if len(await received(server)) == 2 else None

        await wait_for(sent_again, timeout_s=20, interval_s=0.2)
    first, _ = await received(server)
    assert first["state"] == "COMPLETED"  # over before the second was posted
    assert [o["outcome"] for o in first["objects"]] == ["transferred"]
    await wait_for(lambda: _outcome_known(server), timeout_s=10)
    [again] = (await received(server))[1]["objects"]
    assert again["outcome"] == "skipped"  # a second delivery, never a second copy
    assert (dst / "clip.mov").read_bytes() == (src / "clip.mov").read_bytes()
    assert deliverer.in_doubt.waiting() == []


async def _outcome_known(server: EmulatorServer) -> bool | None:
    deliveries = await received(server)
    return True if all("outcome" in o for d in deliveries for o in d["objects"]) else None
