"""Progress everywhere, end to end: /status, /metrics, the page, ``jetwatch status`` (and
``--watch`` on a real terminal), and one log line per delivered file.

The emulator's bandwidth limit makes a delivery of several files take seconds; Jet's
counts (files and bytes transferred) grow file by file, and so does the progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.daemon import (
    SpawnDaemon,
    child_env,
    daemon_config,
    free_port,
    get_json,
    get_text,
    metric,
    run_cli,
    write_toml,
)
from tests.fixtures.emulator import EmulatorFactory, make_manual_job, wait_for

pytestmark = pytest.mark.slow

FILES, SIZE, BANDWIDTH_BPS = 10, 250_000, 250_000  # about 10 s for the whole delivery


async def _watch_on_a_terminal(config: Path, until: str) -> tuple[int, str]:
    """Run ``status --watch`` with a pty as its terminal until ``until`` was drawn twice."""
    master, slave = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jetwatch", "status", "--watch", "--interval", "0.3",
        "--config", str(config), stdin=slave, stdout=slave, stderr=slave, env=child_env(),
    )  # fmt: skip
    os.close(slave)
    screen = b""
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while screen.count(b"\x1b[H\x1b[2J") < 2 or until.encode() not in screen:
            assert loop.time() < deadline, screen.decode(errors="replace")[-2000:]
            with contextlib.suppress(OSError):
                screen += await asyncio.wait_for(asyncio.to_thread(os.read, master, 65536), 10)
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 10)
        with contextlib.suppress(OSError):
            screen += os.read(master, 65536)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        os.close(master)
    return code, screen.decode(errors="replace")


async def test_a_delivery_in_flight_shows_its_progress_everywhere(
    tmp_path: Path, emulator_factory: EmulatorFactory, spawn_daemon: SpawnDaemon
) -> None:
    server = await emulator_factory(bandwidth_bps=BANDWIDTH_BPS)
    job_id, src, _dst = await make_manual_job(server, tmp_path)
    folder = {"path": str(src), "job": job_id, "name": "in", "max_files": 100}
    cfg = daemon_config(server.url, tmp_path / "ledger.db", [folder])
    cfg["http"]["listen"] = f"127.0.0.1:{free_port()}"
    config = write_toml(tmp_path / "c.toml", cfg)
    daemon = await spawn_daemon(config)
    url = await daemon.ops_url()
    names = [f"clips/take-{i:02d}.mov" for i in range(FILES)]
    for name in names:
        (src / name).parent.mkdir(exist_ok=True)
        (src / name).write_bytes(os.urandom(SIZE))

    async def midway() -> dict[str, Any] | None:
        _, body = await get_json(f"{url}/status")
        flights = [b for b in body["in_flight"] if b.get("progress")]
        p = flights[0]["progress"] if flights else None
        return flights[0] if p and 0 < p["bytes_done"] < p["bytes_total"] else None

    flight = await wait_for(midway, timeout_s=30, interval_s=0.1)
    p = flight["progress"]
    assert p["bytes_total"] == FILES * SIZE
    assert p["files"] == FILES
    assert 0 < p["fraction"] < 1
    scraped = await get_text(f"{url}/metrics")
    assert 0 < (metric(scraped, "jetwatch_delivery_bytes_done", folder="in") or 0) < FILES * SIZE
    assert metric(scraped, "jetwatch_delivery_bytes_total", folder="in") == FILES * SIZE
    assert '<progress value="' in await get_text(f"{url}/")

    # The three views of the CLI at once, while the delivery still runs.
    as_json, as_text, (code, screen) = await asyncio.gather(
        run_cli("status", "--json", "--config", str(config)),
        run_cli("status", "--config", str(config)),
        _watch_on_a_terminal(config, "RATE"),
    )
    [item] = json.loads(as_json.stdout)["in_flight"]
    assert item["progress"]["bytes_total"] == FILES * SIZE
    assert "DONE" in as_text.stdout
    assert "ETA" in as_text.stdout
    assert code == 0
    assert "\x1b[?1049h" in screen  # the alternate screen, left again on Ctrl+C
    assert screen.rstrip().endswith("\x1b[?1049l")
    assert "IN FLIGHT" in screen

    # Once delivered: one INFO line per file, naming folder, path, bytes and delivery.
    completed = await daemon.wait_event("delivery_completed", timeout_s=60)
    await wait_for(
        lambda: _lines(daemon, len(names)), timeout_s=10, interval_s=0.1
    )  # fmt: skip
    lines = [e for e in daemon.events() if e.get("event") == "file_delivered"]
    assert sorted(e["path"] for e in lines) == names
    assert {(e["folder"], e["bytes"], e["level"]) for e in lines} == {("in", SIZE, "info")}
    assert {e["delivery"] for e in lines} == {completed["delivery_id"]}


async def _lines(daemon: Any, count: int) -> bool | None:
    found = [e for e in daemon.events() if e.get("event") == "file_delivered"]
    return True if len(found) >= count else None
