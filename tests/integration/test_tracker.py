"""The tracker's verdict on a delivery (pure, fake clock) and its records for real deliveries."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from jetwatch.apis.jet.client import JetClient
from jetwatch.apis.jet.models import Delivery
from jetwatch.config.settings import FolderSettings
from jetwatch.domain.states import BatchState, FileKey, FileState
from jetwatch.domain.wake import Wakeups
from jetwatch.emulators.jet import EmulatorServer
from jetwatch.ledger.sqlite import SqliteLedger
from jetwatch.pipeline.tracker import Tracker
from jetwatch.targets.jet import JetTarget
from jetwatch.targets.jet import judge_delivery as judge
from jetwatch.targets.registry import Route, TargetRegistry
from tests.fixtures.emulator import ADMIN_ID, ADMIN_SECRET, Api, wait_for
from tests.fixtures.pipeline import set_faults

Job = tuple[EmulatorServer, str, Path, Path]


def delivery(
    state: str | None, transferred: int = 0, skipped: int = 0, failed: int = 0
) -> Delivery:
    summary: dict[str, Any] = {
        "transferred": {"count": transferred, "bytes": 10 * transferred},
        "skipped": {"count": skipped, "bytes": 0},
        "failed": {"count": failed, "bytes": 0},
    }
    return Delivery.model_validate({"deliveryId": "d", "state": state, "deliverySummary": summary})


def test_completed_with_every_object_accounted_is_success() -> None:
    """Transferred plus skipped covering every object is success."""
    verdict = judge(delivery("COMPLETED", transferred=2, skipped=1), 3, age_s=5, timeout_s=60)
    assert (verdict.done, verdict.failed) == (True, False)


def test_completed_with_failures_is_failure() -> None:
    """A COMPLETED delivery that reports failed objects is not a success."""
    verdict = judge(delivery("COMPLETED", transferred=2, failed=1), 3, age_s=5, timeout_s=60)
    assert (verdict.done, verdict.failed) == (True, True)
    assert "1 of 3" in verdict.detail


def test_completed_missing_objects_is_failure() -> None:
    """COMPLETED without counting every object (an object silently dropped) is a failure."""
    verdict = judge(delivery("COMPLETED", transferred=2), 3, age_s=5, timeout_s=60)
    assert (verdict.done, verdict.failed) == (True, True)


def test_failed_delivery_is_failure() -> None:
    """A FAILED delivery fails its batch, whatever its counts say."""
    verdict = judge(delivery("FAILED", transferred=3), 3, age_s=5, timeout_s=60)
    assert (verdict.done, verdict.failed) == (True, True)


def test_running_delivery_waits_until_the_timeout_then_fails() -> None:
    """IN_PROGRESS (or an unknown state) is not terminal until delivery_timeout passes."""
    for state in ("CREATED", "IN_PROGRESS", "SOMETHING_NEW", None):
        assert not judge(delivery(state, transferred=1), 3, age_s=59.9, timeout_s=60).done
        late = judge(delivery(state, transferred=1), 3, age_s=60.1, timeout_s=60)
        assert (late.done, late.failed) == (True, True)
        assert "no terminal state" in late.detail


def test_completed_wins_over_the_timeout() -> None:
    """A delivery that finished is judged on its counts even when polled late."""
    verdict = judge(delivery("COMPLETED", transferred=3), 3, age_s=10_000, timeout_s=60)
    assert (verdict.done, verdict.failed) == (True, False)


async def test_lone_file_failing_at_its_last_attempt_is_given_up(
    emulator_job: Job, api: Api, sqlite_ledger: SqliteLedger
) -> None:
    """A file that vanished before the POST does not count: its lone batch-mate is given up."""
    server, job_id, src, _ = emulator_job
    folder = FolderSettings(path=src, job=job_id, name="f", max_attempts=2)
    now = time.time()
    keys = []
    for name in ("bad.bin", "gone.bin"):
        (src / name).write_bytes(os.urandom(100))
        st = (src / name).stat()
        keys.append(FileKey(name, st.st_size, st.st_mtime_ns, st.st_ino))
    ids = await sqlite_ledger.add_stable("f", keys, now)
    batch_id = await sqlite_ledger.create_batch("f", ids, now, attempt=2)
    await sqlite_ledger.mark_gone([ids[1]], now)
    await sqlite_ledger.mark_submitting(batch_id, job_id, now)
    await set_faults(server, fail_paths=["*.bin"])
    created = await api.deliver(job_id, [{"relativePath": "/bad.bin", "sizeInBytes": 100}])
    await sqlite_ledger.mark_submitted(batch_id, created["deliveryId"], now)
    async with JetClient(server.url, ADMIN_ID, SecretStr(ADMIN_SECRET)) as client:
        target = JetTarget(client, job_id, src, close_client=False)
        registry = TargetRegistry({"f": Route(target, job_id)})
        tracker = Tracker(
            sqlite_ledger, registry, lambda: {"f": folder}, poll_min_s=0.05, wakeups=Wakeups()
        )

        async def failed() -> bool | None:
            await tracker.run_once()
            return (
                True if (await sqlite_ledger.batch(batch_id)).state == BatchState.FAILED else None
            )

        await wait_for(failed)
    rows = {f.relpath: f for f in await sqlite_ledger.batch_files(batch_id)}
    assert rows["bad.bin"].state == FileState.FAILED
    assert rows["gone.bin"].state == FileState.GONE
    assert await sqlite_ledger.open_batches(time.time() + 3600) == []
