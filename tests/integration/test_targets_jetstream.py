"""JetStreamTarget against the fake vendor module: complete, resume, errors, in-doubt, threads."""

from __future__ import annotations

import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from jetwatch.apis.jetstream import MODULE_MISSING, module_available
from jetwatch.config.targets import JetStreamSettings
from jetwatch.domain.target import Lookup, Progress, SubmitObject, Target
from jetwatch.errors import (
    AuthError,
    ConfigError,
    NotFoundError,
    RejectedError,
    TransportError,
)
from jetwatch.targets.jetstream import Handle, JetStreamTarget, judge_transfer, mappings_of
from tests.fixtures.emulator import wait_for
from tests.fixtures.fake_jetstream import FakeJetStreamServer
from tests.fixtures.im_helpers import InstantSleep

PASSWORD = SecretStr("secret")


def make_settings(**overrides: Any) -> JetStreamSettings:
    values: dict[str, Any] = {
        "host": "js.example",
        "username": "jsmith",
        "password": PASSWORD,
        "destination_host": "dest.example",
        "destination_root": "/incoming",
        "max_resumes": 3,
    }
    return JetStreamSettings(**{**values, **overrides})


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeJetStreamServer]:
    server = FakeJetStreamServer(tmp_path / "destination")
    yield server
    server.stop()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "watched"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.mov").write_bytes(b"alpha" * 100)
    (folder / "sub" / "b.wav").write_bytes(b"bravo")
    return folder


def objects_in(folder: Path, *relpaths: str) -> list[SubmitObject]:
    return [SubmitObject(r, str(folder / r), (folder / r).stat().st_size) for r in relpaths]


class Targets:
    """Builds targets on the fake and closes them after the test."""

    def __init__(self, fake: FakeJetStreamServer) -> None:
        self.fake = fake
        self.made: list[JetStreamTarget] = []

    def __call__(self, password: SecretStr = PASSWORD, **overrides: Any) -> JetStreamTarget:
        target = JetStreamTarget(
            make_settings(**overrides), password, module=self.fake.module, sleep=InstantSleep()
        )
        self.made.append(target)
        return target


@pytest.fixture
async def targets(fake: FakeJetStreamServer) -> AsyncIterator[Targets]:
    made = Targets(fake)
    yield made
    for target in made.made:
        await target.aclose()


async def finish(target: JetStreamTarget, handle: str, objects: int) -> Progress:
    async def done() -> Progress | None:
        progress = await target.poll(handle, objects, 0.0)
        return progress if progress.done else None

    return await wait_for(done)


async def test_complete_transfer_copies_every_file(
    targets: Targets, fake: FakeJetStreamServer, source: Path
) -> None:
    """A batch becomes one transfer whose files land under destination_root with their paths."""
    target = targets()
    assert isinstance(target, Target)
    objects = objects_in(source, "a.mov", "sub/b.wav")
    handle = await target.submit(objects)
    assert handle.startswith("t:")
    assert "/m:" in handle
    progress = await finish(target, handle, 2)
    assert (progress.done, progress.failed, progress.transferred) == (True, False, 2)
    dest = fake.dest_root / "incoming"
    assert (dest / "a.mov").read_bytes() == b"alpha" * 100
    assert (dest / "sub" / "b.wav").read_bytes() == b"bravo"
    assert fake.manifests == {}  # cleaned up once the transfer ended
    assert "getManifest" in fake.calls
    assert "waitForManifest" not in fake.calls


async def test_vendor_calls_never_run_on_the_event_loop_thread(
    targets: Targets, fake: FakeJetStreamServer, source: Path
) -> None:
    """Every call of the vendor module runs on the target's worker thread."""
    target = targets()
    await finish(target, await target.submit(objects_in(source, "a.mov")), 1)
    assert fake.call_threads
    assert threading.current_thread().name not in fake.call_threads
    assert all(name.startswith("jetstream") for name in fake.call_threads)


async def test_suspended_transfer_is_resumed(
    targets: Targets, fake: FakeJetStreamServer, source: Path
) -> None:
    """A suspended transfer is resumed (within max_resumes) and then completes."""
    fake.suspend_times = 2
    target = targets(max_resumes=3)
    handle = await target.submit(objects_in(source, "a.mov", "sub/b.wav"))
    progress = await finish(target, handle, 2)
    assert (progress.done, progress.failed) == (True, False)
    assert fake.calls.count("resumeTransfer") == 2
    assert (fake.dest_root / "incoming" / "sub" / "b.wav").exists()


async def test_suspended_too_often_fails(
    targets: Targets, fake: FakeJetStreamServer, source: Path
) -> None:
    """Past max_resumes a suspended transfer is a failure, not an endless wait."""
    fake.suspend_times = 3
    target = targets(max_resumes=1)
    handle = await target.submit(objects_in(source, "a.mov", "sub/b.wav"))
    progress = await finish(target, handle, 2)
    assert (progress.done, progress.failed, progress.state) == (True, True, "suspended")
    assert fake.calls.count("resumeTransfer") == 1
    assert progress.failed_count == 2


async def test_transfer_error_fails_with_its_message(
    targets: Targets, fake: FakeJetStreamServer, source: Path
) -> None:
    """status error fails the batch with the transfer's errorMessage as detail."""
    fake.error_paths = ["*b.wav"]
    target = targets()
    handle = await target.submit(objects_in(source, "a.mov", "sub/b.wav"))
    progress = await finish(target, handle, 2)
    assert (progress.failed, progress.state) == (True, "error")
    assert "cannot send" in progress.detail
    assert "b.wav" in progress.detail


async def test_manifest_error_rejects_the_batch(
    targets: Targets, fake: FakeJetStreamServer, source: Path
) -> None:
    """A manifest that ends in error (a missing file) is a RejectedError; no transfer."""
    objects = [*objects_in(source, "a.mov"), SubmitObject("gone.mxf", str(source / "gone.mxf"), 1)]
    with pytest.raises(RejectedError, match="no such file"):
        await targets().submit(objects)
    assert fake.transfers == {}
    assert fake.manifests == {}


async def test_wrong_password_is_an_auth_error(targets: Targets) -> None:
    """Refused credentials raise AuthError without the password in the message."""
    with pytest.raises(AuthError) as caught:
        await targets(password=SecretStr("wrong-pass")).check()
    assert "wrong-pass" not in str(caught.value)


async def test_unreachable_server_is_a_transport_error(
    targets: Targets, fake: FakeJetStreamServer, source: Path
) -> None:
    """A refused connection is retryable, for check and for submit."""
    fake.refuse_connections = True
    target = targets()
    with pytest.raises(TransportError, match="cannot connect"):
        await target.check()
    with pytest.raises(TransportError):
        await target.submit(objects_in(source, "a.mov"))
    fake.refuse_connections = False
    status = await target.check()
    assert (status.ready, status.ident) == (True, "42")


async def test_lost_connection_reconnects(
    targets: Targets, fake: FakeJetStreamServer, source: Path
) -> None:
    """A dropped connection fails one poll; the next one connects and authenticates again."""
    target = targets()
    handle = await target.submit(objects_in(source, "a.mov"))
    fake.drop_connections()
    with pytest.raises(TransportError):
        await target.poll(handle, 1, 0.0)
    progress = await finish(target, handle, 1)
    assert not progress.failed
    assert fake.calls.count("auth") == 2


async def test_hung_call_times_out_and_reconnects(
    targets: Targets, fake: FakeJetStreamServer, source: Path
) -> None:
    """A vendor call that never returns is abandoned after call_timeout_seconds."""
    target = targets(call_timeout_seconds=0.2)
    handle = await target.submit(objects_in(source, "a.mov"))
    fake.stalled.set()
    with pytest.raises(TransportError):
        await target.poll(handle, 1, 0.0)
    fake.stalled.clear()
    assert not (await finish(target, handle, 1)).failed


async def test_poll_past_the_timeout_gives_up_on_an_unreadable_transfer(
    targets: Targets, source: Path
) -> None:
    """A transfer the server does not know fails the batch once it is older than the timeout."""
    target = targets(transfer_timeout_seconds=60)
    await target.check()
    with pytest.raises(TransportError):
        await target.poll("t:999/m:998", 1, 10.0)
    progress = await target.poll("t:999/m:998", 1, 61.0)
    assert (progress.done, progress.failed) == (True, True)


async def test_find_submission_with_a_listing(tmp_path: Path, source: Path) -> None:
    """With mappings and a transfer listing, an unknown transfer of the same files is found."""
    fake = FakeJetStreamServer(tmp_path / "destination", listing=True)
    made = Targets(fake)
    try:
        target = made()
        objects = objects_in(source, "a.mov", "sub/b.wav")
        handle = await target.submit(objects)
        assert await target.find_submission(objects, set()) == Lookup.found(handle)
        assert await target.find_submission(objects, {handle}) == Lookup.not_received()
        assert (
            await target.find_submission(objects_in(source, "a.mov"), set())
            == Lookup.not_received()
        )
    finally:
        await made.made[0].aclose()
        fake.stop()


async def test_find_submission_without_a_listing_says_none(targets: Targets, source: Path) -> None:
    """The documented API cannot list transfers: in-doubt batches are sent again."""
    target = targets()
    objects = objects_in(source, "a.mov")
    await target.submit(objects)
    assert await target.find_submission(objects, set()) == Lookup.not_received()


def test_missing_module_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the vendor module the target refuses to build, saying what to install."""
    monkeypatch.setitem(sys.modules, "jetstream", None)
    assert not module_available()
    with pytest.raises(ConfigError) as caught:
        JetStreamTarget(make_settings(), PASSWORD)
    assert MODULE_MISSING in str(caught.value)
    assert "vendor's Python API" in MODULE_MISSING


def test_handles_round_trip_and_bad_ones_are_not_found() -> None:
    """Handles encode transfer and manifest ids; anything else is NotFoundError."""
    assert Handle.parse(str(Handle("17", "2"))) == Handle("17", "2")
    for bad in ("17", "t:/m:2", "t:17/m:", "m:2/t:17"):
        with pytest.raises(NotFoundError):
            Handle.parse(bad)


def test_mappings_keep_relative_paths_under_the_destination_root(tmp_path: Path) -> None:
    """Destination paths are destination_root + the folder-relative path; sources absolute."""
    objects = [SubmitObject("sub/x.mxf", str(tmp_path / "sub" / "x.mxf"), 3)]
    assert mappings_of(objects, "/incoming") == {"/incoming/sub/x.mxf": str(tmp_path / "sub/x.mxf")}
    assert list(mappings_of(objects, "/")) == ["/sub/x.mxf"]


@pytest.mark.parametrize(
    ("transfer", "age_s", "expected"),
    [
        ({"processing": True, "status": "complete"}, 0.0, (False, False)),
        ({"processing": False, "status": "complete"}, 0.0, (True, False)),
        ({"processing": False, "status": "error", "errorMessage": "disk full"}, 0.0, (True, True)),
        ({"processing": False, "status": "paused-by-admin"}, 10.0, (False, False)),
        ({"processing": False, "status": "paused-by-admin"}, 100.0, (True, True)),
        ({"processing": True, "status": "sending"}, 100.0, (True, True)),
    ],
)
def test_judge_transfer(
    transfer: dict[str, Any], age_s: float, expected: tuple[bool, bool]
) -> None:
    """processing means running; complete/error end it; unknown statuses wait for the timeout."""
    progress = judge_transfer(transfer, 3, age_s, 60.0)
    assert (progress.done, progress.failed) == expected
    if progress.failed and transfer.get("errorMessage"):
        assert "disk full" in progress.detail
