"""What people see while the daemon runs: gauges that come back down, post-action errors
that name the path, and a view-only client's hold that says which role is needed."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from jetwatch.emulators.jet import EmulatorServer
from jetwatch.metrics import REGISTRY
from tests.fixtures.emulator import VIEWER_ID, VIEWER_SECRET
from tests.fixtures.pipeline import (
    all_done,
    make_settings,
    running_daemon,
    wait_arrived,
    wait_true,
    write_file,
)

Job = tuple[EmulatorServer, str, Path, Path]


def in_flight(label: str) -> float | None:
    return REGISTRY.get_sample_value("jetwatch_batches_in_flight", {"folder": label})


async def test_batches_in_flight_gauge_returns_to_zero(emulator_job: Job, tmp_path: Path) -> None:
    """Once the last delivery finished the gauge is 0 at once, not after the idle poll."""
    server, job_id, src, dst = emulator_job
    # An idle tracker sleeps poll_max_seconds: a gauge set only at its next round would stay.
    settings = make_settings(
        server.url, src, tmp_path / "ledger.db", job_id, jet={"poll_max_seconds": 120.0}
    )
    label = settings.folders[0].label
    async with running_daemon(settings) as daemon:
        write_file(src / "a.bin", b"a")
        await wait_true(lambda: in_flight(label) == 1, what="one batch in flight")
        await wait_arrived(src, dst, ["a.bin"])
        await wait_true(lambda: all_done(daemon, 1), what="done")
        await wait_true(lambda: in_flight(label) == 0, timeout_s=10, what="gauge back to 0")


async def test_post_action_error_names_the_paths(emulator_job: Job, tmp_path: Path) -> None:
    """A done_dir that cannot be created: the error in status says which paths and why."""
    server, job_id, src, dst = emulator_job
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    settings = make_settings(
        server.url, src, tmp_path / "ledger.db", job_id,
        post_action="move", done_dir=blocker / "done",
    )  # fmt: skip
    async with running_daemon(settings) as daemon:
        write_file(src / "sub" / "a.bin", b"a")
        await wait_arrived(src, dst, ["sub/a.bin"])

        async def error() -> str | None:
            errors = (await daemon.ledger.snapshot(0.0)).action_errors
            return errors[0].error if errors else None

        await wait_true(lambda: error(), what="the post-action error")
        text = await error()
    assert text is not None
    assert text.startswith(f"post-action move to {blocker}/done/sub/a.bin of {src}/sub/a.bin")
    assert f"Not a directory: {blocker}" in text
    assert "FileNotFoundError" not in text


async def test_view_only_client_hold_says_which_role(emulator_job: Job, tmp_path: Path) -> None:
    """A client whose role may only read: its batches are HELD with the fix as the reason."""
    server, job_id, src, _ = emulator_job
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id)
    viewer = {"client_id": VIEWER_ID, "client_secret": SecretStr(VIEWER_SECRET)}
    settings = settings.model_copy(update={"jet": settings.jet.model_copy(update=viewer)})
    async with running_daemon(settings) as daemon:
        write_file(src / "a.bin", b"a")

        async def held() -> str | None:
            batches = await daemon.ledger.held_batches()
            return batches[0].last_error if batches else None

        await wait_true(lambda: held(), what="a held batch")
        reason = await held()
    assert reason is not None
    assert "this client's role cannot create deliveries: use an S2S_ADMIN client" in reason
