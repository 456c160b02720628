"""End to end against the JetStream fake: the guarantees the Jet path gives, in-process.

The daemon runs in this process with the fake standing in for the vendor module (it is
not importable by a daemon subprocess). A crash is simulated the way the ledger would
show it: a batch left SUBMITTING after its transfer was (or was not) created.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import structlog

from jetwatch.config.settings import Settings
from jetwatch.domain.states import BatchState
from jetwatch.domain.target import SubmitObject
from jetwatch.targets.jetstream import Handle, mappings_of
from tests.fixtures.fake_jetstream import FakeJetStreamServer
from tests.fixtures.pipeline import (
    all_done,
    arrived,
    grow_file,
    in_doubt_batch,
    running_daemon,
    wait_arrived,
    wait_isolated,
    wait_true,
    write_file,
)
from tests.fixtures.targets import js_section, target_settings, transfer_counts, transfer_states


def folders(tmp_path: Path) -> tuple[Path, Path]:
    src, dst = tmp_path / "source", tmp_path / "dest"
    src.mkdir(exist_ok=True)
    return src, dst


def settings_for(
    tmp_path: Path, src: Path, section: dict[str, Any] | None = None, **folder: Any
) -> Settings:
    """One JetStream folder sending to the fake's destination root, fast timings."""
    return target_settings(
        src, tmp_path / "ledger.db", "jetstream", jetstream=js_section(**(section or {})), **folder
    )


def files_under(root: Path) -> set[str]:
    """Every file under ``root`` (temporary part files would show here too)."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


async def test_growing_file_is_sent_once_complete(
    js_fake: FakeJetStreamServer, tmp_path: Path
) -> None:
    """A file written for longer than settle_seconds is in one transfer, at its final size."""
    src, dst = folders(tmp_path)
    settings = settings_for(tmp_path, src, settle_seconds=0.4)
    async with running_daemon(settings, jetstream_module=js_fake.module) as daemon:
        path = src / "growing.mxf"
        await grow_file(path, 1.6)  # four times settle_seconds
        await wait_arrived(src, dst, ["growing.mxf"])
        await wait_true(lambda: all_done(daemon, 1), what="post-action done")
    assert transfer_counts(js_fake, src) == {"growing.mxf": 1}
    assert (dst / "growing.mxf").stat().st_size == path.stat().st_size
    assert threads_of(js_fake)
    assert "MainThread" not in threads_of(js_fake)


def threads_of(fake: FakeJetStreamServer) -> set[str]:
    with fake.lock:
        return set(fake.call_threads)


async def test_burst_larger_than_max_files(js_fake: FakeJetStreamServer, tmp_path: Path) -> None:
    """300 files with max_files=50: every transfer has at most 50 files, each sent once."""
    src, dst = folders(tmp_path)
    settings = settings_for(tmp_path, src, max_files=50, settle_seconds=0.2)
    names = [f"burst/{i // 50:02d}/file-{i:03d}.dat" for i in range(300)]
    async with running_daemon(settings, jetstream_module=js_fake.module) as daemon:
        for i, rel in enumerate(names):
            write_file(src / rel, f"content {i}\n".encode())
        await wait_true(lambda: all_done(daemon, len(names)), timeout_s=40, what="all done")
    with js_fake.lock:
        sizes = [len(t.mappings) for t in js_fake.transfers.values()]
    assert max(sizes) <= 50
    assert transfer_counts(js_fake, src) == dict.fromkeys(names, 1)
    assert files_under(dst) == set(names)
    assert arrived(src, dst, names) == set(names)


async def test_suspended_transfers_are_resumed(
    js_fake: FakeJetStreamServer, tmp_path: Path
) -> None:
    """Every transfer suspends once mid-way: each is resumed and completes, nothing is resent."""
    src, dst = folders(tmp_path)
    js_fake.suspend_times = 1
    settings = settings_for(tmp_path, src, max_files=3)
    names = [f"s/{i:02d}.bin" for i in range(9)]
    with structlog.testing.capture_logs() as logs:
        async with running_daemon(settings, jetstream_module=js_fake.module) as daemon:
            for rel in names:
                write_file(src / rel, os.urandom(700))
            await wait_arrived(src, dst, names)
            await wait_true(lambda: all_done(daemon, len(names)), what="all done")
    resumed = [e for e in logs if e["event"] == "jetstream_transfer_resumed"]
    assert len(resumed) == len(js_fake.transfers) >= 3
    assert transfer_counts(js_fake, src) == dict.fromkeys(names, 1)
    assert transfer_states(js_fake) == {"complete": len(js_fake.transfers)}


async def test_transfer_error_is_retried(js_fake: FakeJetStreamServer, tmp_path: Path) -> None:
    """A transfer that ends in error is retried; once the cause is gone the files arrive."""
    src, dst = folders(tmp_path)
    js_fake.error_paths = ["*flaky*"]
    settings = settings_for(tmp_path, src, retry_backoff_seconds=0.5)
    names = ["flaky.mov", "steady.wav"]
    async with running_daemon(settings, jetstream_module=js_fake.module) as daemon:
        for rel in names:
            write_file(src / rel, rel.encode() * 100)
        await wait_true(lambda: transfer_states(js_fake)["error"] >= 1, what="a transfer failed")
        js_fake.error_paths = []
        await wait_arrived(src, dst, names)
        await wait_true(lambda: all_done(daemon, len(names)), what="all done")
    assert transfer_counts(js_fake, src)["flaky.mov"] >= 2
    assert transfer_states(js_fake)["complete"] >= 1
    assert files_under(dst) == set(names)


async def test_failing_path_is_isolated_and_given_up(
    js_fake: FakeJetStreamServer, tmp_path: Path
) -> None:
    """A file whose transfer always errors ends FAILED in failed_dir; its batch-mates arrive."""
    src, dst = folders(tmp_path)
    js_fake.error_paths = ["*.bad"]
    failed_dir = tmp_path / "failed"
    settings = settings_for(
        tmp_path, src, max_attempts=2, failed_dir=failed_dir, batch_linger_seconds=0.5
    )
    good = [f"sub/good-{i}.txt" for i in range(5)]
    async with running_daemon(settings, jetstream_module=js_fake.module) as daemon:
        for rel in ["sub/broken.bad", *good]:
            write_file(src / rel, rel.encode() * 10)
        await wait_arrived(src, dst, good)
        await wait_isolated(daemon, failed_dir, "sub/broken.bad", len(good))
        failures = (await daemon.status_json())["recent_failures"]
    assert [f["relpath"] for f in failures] == ["sub/broken.bad"]
    assert "cannot send" in failures[0]["error"]
    with js_fake.lock:
        alone = [t for t in js_fake.transfers.values() if list(t.mappings) == ["/sub/broken.bad"]]
    assert len(alone) >= 2
    assert all(t.record["status"] == "error" for t in alone)
    assert not (dst / "sub" / "broken.bad").exists()


def crashed_transfer(fake: FakeJetStreamServer, src: Path, names: list[str]) -> str:
    """What a daemon killed right after ``createTransfer`` left on the server: its handle."""
    objects = [SubmitObject(n, str(src / n), (src / n).stat().st_size) for n in names]
    manifest_id = fake.create_manifest(mappings_of(objects, "/"))["manifestId"]
    while fake.get_manifest(manifest_id)["processing"]:
        pass
    transfer = fake.create_transfer({"destinationId": "42"}, manifest_id)
    return str(Handle(transfer["transferId"], manifest_id))


async def test_crash_after_create_transfer_is_adopted_with_a_listing(
    js_fake: FakeJetStreamServer, tmp_path: Path
) -> None:
    """SUBMITTING after a crash, the server lists transfers: the transfer is adopted, not resent."""
    src, dst = folders(tmp_path)
    js_fake.listing = True
    settings = settings_for(tmp_path, src)
    names = ["a.txt", "deep/b.txt"]
    for n in names:
        write_file(src / n, n.encode() * 300)
    handle = crashed_transfer(js_fake, src, names)
    label = settings.folders[0].label
    batch_id = await in_doubt_batch(settings.ledger.path, label, src, "42", names)
    with structlog.testing.capture_logs() as logs:
        async with running_daemon(settings, jetstream_module=js_fake.module) as daemon:
            await wait_true(lambda: all_done(daemon, len(names)), what="adopted batch done")
            batch = await daemon.ledger.batch(batch_id)
    assert (batch.state, batch.delivery_id) == (BatchState.COMPLETED, handle)
    assert any(e["event"] == "in_doubt_adopted" for e in logs)
    assert transfer_counts(js_fake, src) == dict.fromkeys(names, 1)
    assert files_under(dst) == set(names)
    assert arrived(src, dst, names) == set(names)


async def test_crash_without_a_listing_resends_to_the_same_paths(
    js_fake: FakeJetStreamServer, tmp_path: Path
) -> None:
    """Without a transfer listing the batch is sent again (documented): same paths, whole files."""
    src, dst = folders(tmp_path)
    settings = settings_for(tmp_path, src)
    names = ["a.txt", "deep/b.txt"]
    for n in names:
        write_file(src / n, os.urandom(4000))
    crashed_transfer(js_fake, src, names)
    label = settings.folders[0].label
    batch_id = await in_doubt_batch(settings.ledger.path, label, src, "42", names)
    with structlog.testing.capture_logs() as logs:
        async with running_daemon(settings, jetstream_module=js_fake.module) as daemon:
            await wait_true(lambda: all_done(daemon, len(names)), what="resent batch done")
            assert (await daemon.ledger.batch(batch_id)).state == BatchState.COMPLETED
        await asyncio.to_thread(js_fake.stop)  # both transfers have finished writing
    assert any(e["event"] == "jetstream_in_doubt_unresolvable" for e in logs)
    assert transfer_counts(js_fake, src) == dict.fromkeys(names, 2)
    assert files_under(dst) == set(names)
    assert arrived(src, dst, names) == set(names)
