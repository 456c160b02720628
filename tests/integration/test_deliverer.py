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
from jetwatch.emulators.jet import EmulatorServer
from jetwatch.errors import ProtocolError
from jetwatch.ledger.sqlite import SqliteLedger
from jetwatch.pipeline.deliverer import Deliverer, check_files
from jetwatch.targets.jet import JetTarget, relative_path
from jetwatch.targets.registry import Route, TargetRegistry
from tests.fixtures.clock import FakeClock
from tests.fixtures.emulator import ADMIN_ID, ADMIN_SECRET
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


def jet_registry(client: JetClient, job: str, folder: FolderSettings) -> TargetRegistry:
    """A registry with one Jet folder, as the daemon builds it."""
    target = JetTarget(client, job, folder.root, close_client=False)
    return TargetRegistry({folder.label: Route(target, job)})


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
    emulator_job: Job, sqlite_ledger: SqliteLedger
) -> None:
    """An unreadable answer to the POST is in doubt: the delivery is found and adopted."""
    server, job_id, src, _ = emulator_job
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
