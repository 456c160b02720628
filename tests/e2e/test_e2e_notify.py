"""Notifications end to end: the daemon as a process POSTs to a local webhook receiver.

A failing file, a paused job and its resumption each arrive as one JSON POST with folder,
files, reason and a human ``text``; a webhook that answers 500 is retried, shown as failing
in /status and /metrics, and delivered once it works; the webhook URL (whose path is the
secret of a chat webhook) appears nowhere: not in the log, /status or the console.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.fixtures.daemon import (
    SpawnDaemon,
    daemon_config,
    free_port,
    get_json,
    get_text,
    metric,
    set_faults,
    write_toml,
)
from tests.fixtures.emulator import EmulatorFactory, make_manual_job, set_paused, wait_for

pytestmark = pytest.mark.slow

SECRET_PATH = "/services/T000/B000/kP9wq4SecretWebhookKey"


@dataclass
class Receiver:
    """A local incoming-webhook endpoint: records JSON bodies, answers ``status``."""

    url: str = ""
    status: int = 200
    received: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        if request.path != SECRET_PATH:
            return web.Response(status=404)
        if self.status != 200:
            self.refused += 1
            return web.Response(status=self.status, text="try later")
        self.received.append(await request.json())
        return web.Response(text="ok")

    async def wait(self, event: str, timeout_s: float = 30.0) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            return next((b for b in self.received if b["event"] == event), None)

        return await wait_for(probe, timeout_s=timeout_s, interval_s=0.05)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", hook.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook.url = f"http://127.0.0.1:{runner.addresses[0][1]}{SECRET_PATH}"
    yield hook
    await runner.cleanup()


async def test_failed_held_recovered_reach_the_webhook_and_a_failing_one_shows(
    tmp_path: Path,
    emulator_factory: EmulatorFactory,
    spawn_daemon: SpawnDaemon,
    receiver: Receiver,
) -> None:
    server = await emulator_factory()
    job_id, src, _dst = await make_manual_job(server, tmp_path)
    await set_faults(server.url, fail_paths=["*.bad"])
    folder = {"path": str(src), "job": job_id, "name": "in", "max_attempts": 1}
    cfg = daemon_config(server.url, tmp_path / "ledger.db", [folder])
    cfg["http"]["listen"] = f"127.0.0.1:{free_port()}"
    cfg["notify"] = {"webhook_url": receiver.url}
    daemon = await spawn_daemon(write_toml(tmp_path / "c.toml", cfg))
    url = await daemon.ops_url()

    # The webhook fails at first: retried, and visible as failing.
    receiver.status = 500
    (src / "broken.bad").write_bytes(os.urandom(1500))

    async def failing() -> dict[str, Any] | None:
        _, body = await get_json(f"{url}/status")
        return body["notify"] if body["notify"]["ok"] is False else None

    notify = await wait_for(failing, timeout_s=30, interval_s=0.2)
    assert notify["origin"] == receiver.url.removesuffix(SECRET_PATH)
    assert "answered 500" in notify["last_error"]
    scraped = await get_text(f"{url}/metrics")
    assert metric(scraped, "jetwatch_notify_webhook_up") == 0
    assert (metric(scraped, "jetwatch_notify_errors_total") or 0) >= 1
    receiver.status = 200
    failed = await receiver.wait("failed")
    assert failed["folder"] == "in"
    assert failed["files"] == ["broken.bad"]
    assert failed["count"] == 1
    assert "fail_paths matched" in failed["reason"]
    assert failed["text"].startswith("jetwatch on ")
    assert "1 file(s) failed in folder 'in': broken.bad" in failed["text"]
    assert receiver.refused >= 1

    # A paused job holds the next batch (one message), resuming releases it (one more).
    await set_paused(server, job_id, True)
    (src / "later.txt").write_bytes(b"after the pause\n")
    held = await receiver.wait("held")
    assert held["folder"] == "in"
    assert "paused" in held["reason"]
    await set_paused(server, job_id, False)
    recovered = await receiver.wait("recovered")
    assert recovered["folder"] == "in"
    assert [b["event"] for b in receiver.received] == ["failed", "held", "recovered"]

    async def sent_ok() -> bool | None:
        _, body = await get_json(f"{url}/status")
        return True if body["notify"]["ok"] is True and body["notify"]["sent"] == 3 else None

    await wait_for(sent_ok, timeout_s=10, interval_s=0.2)
    scraped = await get_text(f"{url}/metrics")
    assert metric(scraped, "jetwatch_notify_webhook_up") == 1
    assert metric(scraped, "jetwatch_notifications_sent_total", event="failed") == 1

    # The URL's path is a secret: nowhere in what the daemon shows or logs.
    _, status = await get_json(f"{url}/status")
    page = await get_text(f"{url}/")
    for shown in (json.dumps(status), page, daemon.text()):
        assert "kP9wq4SecretWebhookKey" not in shown
