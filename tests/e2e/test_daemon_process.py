"""The daemon as a real process: sd_notify, metrics, signals, the shutdown bound, exit codes."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from jetwatch.emulators.jet import EmulatorServer
from jetwatch.ledger.sqlite import SqliteLedger
from tests.fixtures.daemon import (
    NotifyListener,
    SpawnDaemon,
    assert_no_secrets,
    daemon_config,
    drop,
    get_json,
    get_text,
    metric,
    received_paths,
    run_cli,
    set_faults,
    wait_copied,
    write_toml,
)
from tests.fixtures.emulator import ADMIN_SECRET, EmulatorFactory, make_manual_job, wait_for

pytestmark = pytest.mark.slow

Job = tuple[EmulatorServer, str, Path, Path]


async def test_notify_metrics_and_clean_stop(
    emulator_job: Job, tmp_path: Path, spawn_daemon: SpawnDaemon, notify_socket: NotifyListener
) -> None:
    """READY after the first scan, WATCHDOG pings, STATUS; metrics move; SIGTERM → STOPPING, 0."""
    server, job_id, src, dst = emulator_job
    drop(src, ["before-start.txt"])
    cfg = daemon_config(
        server.url, tmp_path / "ledger.db", [{"path": str(src), "job": job_id, "name": "in"}]
    )
    cfg["log"]["level"] = "debug"
    path = write_toml(tmp_path / "c.toml", cfg)
    env = {"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "300000"}
    daemon = await spawn_daemon(path, env)
    await notify_socket.wait_line("READY=1")
    await daemon.wait_event("ready")
    order = [e["event"] for e in daemon.events() if e.get("event") in ("scan_done", "ready")]
    assert order[:2] == ["scan_done", "ready"], "READY=1 only after the first full scan"
    await notify_socket.wait_line("STATUS=")
    await notify_socket.wait_line("WATCHDOG=1", count=3)
    url = await daemon.ops_url()

    async def ready() -> dict[str, object] | None:
        status, body = await get_json(f"{url}/readyz")
        return body if status == 200 else None

    body = await wait_for(ready, timeout_s=15)
    assert body["ready"] is True
    await wait_copied(src, dst, ["before-start.txt"])
    drop(src, ["a.txt", "sub/b.txt"])
    await wait_copied(src, dst, ["a.txt", "sub/b.txt"])

    async def moved() -> str | None:
        text = await get_text(f"{url}/metrics")
        names = ("detected", "settled", "submitted", "transferred")
        counts = [metric(text, f"jetwatch_files_{n}_total", folder="in") or 0 for n in names]
        return text if min(counts) >= 3 else None

    text = await wait_for(moved, timeout_s=15)
    posts = metric(
        text,
        "jetwatch_api_requests_total",
        method="POST",
        route="/v1/jobs/{jobId}/deliveries",
    )
    assert posts is not None
    assert posts >= 1
    assert metric(text, "jetwatch_batches_in_flight", folder="in") is not None
    assert metric(text, "jetwatch_watch_mode", folder="in", mode="events") == 1
    assert metric(text, "jetwatch_loop_lag_seconds") is not None
    await notify_socket.wait_line("STATUS=api ok")  # changes show within a second
    pings = len([x for x in notify_socket.lines() if x == "WATCHDOG=1"])
    await notify_socket.wait_line("WATCHDOG=1", count=pings + 2)  # the cadence goes on

    daemon.send(signal.SIGTERM)
    assert await daemon.wait_exit(15) == 0
    await notify_socket.wait_line("STOPPING=1")
    assert_no_secrets(daemon.text(), ADMIN_SECRET)
    assert sorted(await received_paths(server.url)) == ["/a.txt", "/before-start.txt", "/sub/b.txt"]


async def test_sigterm_under_load_exits_in_time_and_restart_sends_each_file_once(
    emulator_factory: EmulatorFactory, tmp_path: Path, spawn_daemon: SpawnDaemon
) -> None:
    """SIGTERM while deliveries flow: exit 0 within the bound; after a restart, all exactly once."""
    server = await emulator_factory(bandwidth_bps=400_000)
    job_id, src, dst = await make_manual_job(server, tmp_path)
    await set_faults(server.url, latency_ms=150)
    folder = {"path": str(src), "job": job_id, "name": "in", "max_files": 2}
    shutdown_s = 5.0
    cfg = daemon_config(server.url, tmp_path / "ledger.db", [folder], shutdown_s=shutdown_s)
    path = write_toml(tmp_path / "c.toml", cfg)
    names = [f"clip-{i:02d}.mxf" for i in range(30)]
    daemon = await spawn_daemon(path)
    await daemon.wait_event("ready")
    drop(src, names, size=100_000)
    await daemon.wait_event("delivery_submitted", after=1)
    sent_at = time.monotonic()
    daemon.send(signal.SIGTERM)
    code = await daemon.wait_exit(shutdown_s + 15)
    took_s = time.monotonic() - sent_at
    assert code == 0, daemon.text()[-3000:]
    assert took_s < shutdown_s + 5, f"shutdown took {took_s:.1f} s"
    print(f"shutdown under load took {took_s:.2f} s (bound {shutdown_s} s)")
    assert daemon.events()[-1]["event"] == "stopped"
    # Not everything can have arrived yet: the test would prove nothing otherwise.
    assert len(await received_paths(server.url)) < len(names)

    await set_faults(server.url)
    again = await spawn_daemon(path)
    await wait_copied(src, dst, names, timeout_s=60)
    sent = await received_paths(server.url)
    assert sorted(sent) == sorted(f"/{n}" for n in names), "each file exactly once"
    again.send(signal.SIGTERM)
    assert await again.wait_exit(15) == 0


async def test_second_signal_forces_exit_and_the_post_is_resolved_later(
    emulator_job: Job, tmp_path: Path, spawn_daemon: SpawnDaemon
) -> None:
    """SIGINT waits for a slow POST; a second SIGINT exits at once (1); a restart resolves it."""
    server, job_id, src, dst = emulator_job
    folder = {"path": str(src), "job": job_id, "name": "in"}
    ledger_path = tmp_path / "ledger.db"
    cfg = daemon_config(server.url, ledger_path, [folder], shutdown_s=60.0)
    path = write_toml(tmp_path / "c.toml", cfg)
    daemon = await spawn_daemon(path)
    await daemon.wait_event("job_ready")
    await set_faults(server.url, latency_ms=3000)
    drop(src, ["slow.mov"])

    async def posting() -> bool | None:
        async with await SqliteLedger.open_readonly(ledger_path) as ledger:
            return True if await ledger.in_doubt_batches() else None

    await wait_for(posting, timeout_s=15)  # SUBMITTING: the POST is on its way
    daemon.send(signal.SIGINT)
    await daemon.wait_event("shutdown_started")
    daemon.send(signal.SIGINT)
    assert await daemon.wait_exit(10) == 1
    assert any(e["event"] == "shutdown_forced" for e in daemon.events())
    async with await SqliteLedger.open_readonly(ledger_path) as ledger:
        assert len(await ledger.in_doubt_batches()) == 1, "the answer never reached the ledger"

    # The restart finds the batch in doubt and resolves it against the job's deliveries
    # (the emulator drops a request whose client went away, so it posts again): once.
    await set_faults(server.url)
    again = await spawn_daemon(path)
    await wait_copied(src, dst, ["slow.mov"])
    assert any(str(e.get("event")).startswith("in_doubt_") for e in again.events())
    again.send(signal.SIGTERM)
    assert await again.wait_exit(15) == 0
    assert await received_paths(server.url) == ["/slow.mov"]


async def test_bad_config_exits_2_naming_the_key(tmp_path: Path, spawn_daemon: SpawnDaemon) -> None:
    """`run` with a bad config starts nothing: exit 2, the key in the message, no traceback."""
    cfg = daemon_config("http://127.0.0.1:9", tmp_path / "l.db", [{"path": "relative", "job": "J"}])
    cfg["folders"][0]["settle_secs"] = 1
    path = write_toml(tmp_path / "c.toml", cfg)
    result = await run_cli("run", "--config", str(path))
    assert result.code == 2
    assert "config error: folders[0].settle_secs: unknown key" in result.stderr
    assert "config error: folders[0].path: relative must be an absolute path" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "l.db").exists()


async def test_corrupt_ledger_exits_3(tmp_path: Path) -> None:
    """A ledger that is not a ledger is refused with exit 3 and a hint, and left untouched."""
    ledger = tmp_path / "ledger.db"
    garbage = b"not a database " * 500
    ledger.write_bytes(garbage)
    (tmp_path / "in").mkdir()
    cfg = daemon_config("http://127.0.0.1:9", ledger, [{"path": str(tmp_path / "in"), "job": "J"}])
    result = await run_cli("run", "--config", str(write_toml(tmp_path / "c.toml", cfg)))
    assert result.code == 3
    assert "ledger_refused" in result.output
    assert "move-aside" in result.output
    assert ledger.read_bytes() == garbage
    assert_no_secrets(result.output, ADMIN_SECRET)
