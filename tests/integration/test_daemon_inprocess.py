"""The Daemon in-process: crash of a component, refused ledgers, a busy port, a missing folder."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
import structlog
from pydantic import SecretStr

from jetwatch.app.daemon import Daemon
from jetwatch.config.settings import (
    DaemonSettings,
    FolderSettings,
    HttpSettings,
    JetSettings,
    LedgerSettings,
    Settings,
)
from jetwatch.errors import ExitCode
from jetwatch.ledger.sqlite import SqliteLedger
from jetwatch.pipeline.actions import PostActions
from tests.fixtures.daemon import free_port, get_json
from tests.fixtures.emulator import ADMIN_ID, ADMIN_SECRET, wait_for


def settings_for(tmp_path: Path, folder: Path, *, listen: str = "127.0.0.1:0") -> Settings:
    """Offline settings: the API port has nothing listening."""
    return Settings(
        jet=JetSettings(
            base_url=f"http://127.0.0.1:{free_port()}",
            client_id=ADMIN_ID,
            client_secret=SecretStr(ADMIN_SECRET),
            max_retries=0,
            job_recheck_seconds=0.5,
        ),
        ledger=LedgerSettings(path=tmp_path / "ledger.db"),
        http=HttpSettings(listen=listen),
        daemon=DaemonSettings(shutdown_timeout_seconds=5.0),
        folders=[FolderSettings(path=folder, job="J", name="in", settle_seconds=0.2)],
    )


async def test_a_crashing_component_stops_the_daemon_with_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One TaskGroup: a component that raises stops all of them; the log says which and why."""
    (tmp_path / "in").mkdir()

    async def broken_run(self: PostActions) -> None:
        await asyncio.sleep(0.2)
        raise RuntimeError("post-actions exploded")

    monkeypatch.setattr(PostActions, "run", broken_run)
    daemon = Daemon(settings_for(tmp_path, tmp_path / "in"))
    with structlog.testing.capture_logs() as logs:
        code = await asyncio.wait_for(daemon.run(), 20)
    assert code == ExitCode.FAILURE
    crashed = [e for e in logs if e["event"] == "component_crashed"]
    assert len(crashed) == 1
    assert "post-actions exploded" in crashed[0]["error"]
    assert crashed[0]["log_level"] == "critical"
    assert logs[-1]["event"] == "stopped"
    assert logs[-1]["exit_code"] == ExitCode.FAILURE


async def test_refused_and_unavailable_ledgers(tmp_path: Path) -> None:
    """Not a ledger: exit 3 and the file is kept; a ledger that cannot be created: exit 1."""
    (tmp_path / "in").mkdir()
    corrupt = settings_for(tmp_path, tmp_path / "in")
    corrupt.ledger.path.write_bytes(b"garbage " * 1000)
    assert await Daemon(corrupt).run() == ExitCode.LEDGER
    assert corrupt.ledger.path.read_bytes() == b"garbage " * 1000
    (tmp_path / "a-file").write_text("x")
    blocked = corrupt.model_copy(
        update={"ledger": LedgerSettings(path=tmp_path / "a-file" / "ledger.db")}
    )
    with structlog.testing.capture_logs() as logs:
        assert await Daemon(blocked).run() == ExitCode.FAILURE
    assert any(e["event"] == "ledger_unavailable" for e in logs)


async def test_busy_ops_port_is_a_config_error(tmp_path: Path) -> None:
    """http.listen on a port in use: exit 2, naming http.listen."""
    (tmp_path / "in").mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = settings_for(tmp_path, tmp_path / "in", listen=f"127.0.0.1:{port}")
        with structlog.testing.capture_logs() as logs:
            assert await Daemon(settings).run() == ExitCode.CONFIG
    (error,) = [e for e in logs if e["event"] == "config_error"]
    assert error["key"] == "http.listen"


async def test_missing_folder_does_not_hold_ready_back(tmp_path: Path) -> None:
    """An unmounted share at start: READY is still announced; /readyz says the folder is down."""
    daemon = Daemon(settings_for(tmp_path, tmp_path / "not-mounted"))
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(daemon.run())

        async def announced() -> dict[str, object] | None:
            if task.done():
                raise AssertionError(f"daemon stopped: {task.result()}")
            return next((e for e in logs if e["event"] == "ready"), None)

        ready = await wait_for(announced, timeout_s=15)
        assert ready["folders_down"] == ["in"]
        assert daemon.ops_url is not None
        status, body = await get_json(f"{daemon.ops_url}/readyz")
        assert status == 503
        assert any(r.startswith("folder 'in' is down: root") for r in body["reasons"])
        (tmp_path / "not-mounted").mkdir()

        async def scanned() -> bool | None:
            _, body = await get_json(f"{daemon.ops_url}/readyz")
            return True if body["folders"]["in"]["first_scan_done"] else None

        await wait_for(scanned, timeout_s=15)
        daemon.request_stop()
        assert await asyncio.wait_for(task, 20) == ExitCode.OK


async def test_a_second_daemon_on_the_same_ledger_is_refused(tmp_path: Path) -> None:
    """One daemon per ledger: a second one exits 3 and names the lock holder; the first runs on."""
    (tmp_path / "in").mkdir()
    first = Daemon(settings_for(tmp_path, tmp_path / "in"))
    running = asyncio.create_task(first.run())
    try:
        await wait_for(lambda: _ready_soon(first), timeout_s=20)
        with structlog.testing.capture_logs() as logs:
            code = await asyncio.wait_for(Daemon(settings_for(tmp_path, tmp_path / "in")).run(), 20)
        assert code == ExitCode.LEDGER
        assert any(e["event"] == "ledger_in_use" for e in logs)
        assert not running.done()
    finally:
        first.request_stop()
        assert await asyncio.wait_for(running, 20) == ExitCode.OK


async def _ready_soon(daemon: Daemon) -> bool | None:
    return True if getattr(daemon, "ledger", None) is not None and daemon.intakes else None


async def test_folders_started_together_share_one_watcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six folders, one of which reads its ledger rows slowly: all of them still begin
    watching together, so one watcher thread serves all six (none left to merge)."""
    names = [f"f{i}" for i in range(6)]
    for name in names:
        (tmp_path / name).mkdir()
    settings = settings_for(tmp_path, tmp_path / names[0])
    folders = [
        FolderSettings(path=tmp_path / name, job="J", name=name, poll="events") for name in names
    ]
    settings = settings.model_copy(update={"folders": folders})
    real = SqliteLedger.known_fingerprints

    async def slow_for_f5(self: SqliteLedger, folder: str) -> set[int]:
        if folder == "f5":
            await asyncio.sleep(1.0)  # a big folder's rows, a busy disk
        return await real(self, folder)

    monkeypatch.setattr(SqliteLedger, "known_fingerprints", slow_for_f5)
    daemon = Daemon(settings)
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(daemon.run())

        async def scanned() -> bool | None:
            if task.done():
                raise AssertionError(f"daemon stopped: {task.result()}")
            done = {e["folder"] for e in logs if e["event"] == "scan_done" and e.get("full")}
            return True if done == set(names) else None

        await wait_for(scanned, timeout_s=20)
        daemon.request_stop()
        assert await asyncio.wait_for(task, 20) == ExitCode.OK
    shared = [e["folders"] for e in logs if e["event"] == "watch_shared"]
    assert shared == [6]
    assert not [e for e in logs if e["event"] == "watch_merged"]
