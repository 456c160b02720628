"""The console in a real browser: the daemon as a process, the emulator over HTTP, chromium.

What an operator sees is asserted on the rendered page (after the page's own script has
refreshed it): the folder, a progress bar that moves while a bandwidth-limited delivery
runs, the failed file with its reason, a held batch after the job is paused, and the
retry action. Screenshots at 1280 px and at phone width are saved as test artifacts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.browser import Browser
from tests.fixtures.daemon import (
    SpawnDaemon,
    daemon_config,
    free_port,
    get_json,
    set_faults,
    write_toml,
)
from tests.fixtures.emulator import EmulatorFactory, make_manual_job, set_paused, wait_for

pytestmark = pytest.mark.slow

TOKEN = "console-token-0123456789"
BANDWIDTH_BPS = 400_000
BIG_FILES, BIG_SIZE = 10, 300_000  # about 7.5 s at BANDWIDTH_BPS, file by file


async def _page_has(browser: Browser, css: str, text: str, timeout_s: float = 30.0) -> str:
    """Wait until the element's rendered text contains ``text`` (the page refreshes itself)."""

    async def probe() -> str | None:
        found = await browser.text(css)
        return found if text in found else None

    try:
        return await wait_for(probe, timeout_s=timeout_s, interval_s=0.25)
    except AssertionError:
        raise AssertionError(
            f"{css} never showed {text!r}:\n{await browser.text('body')}"
        ) from None


async def _status(url: str) -> dict[str, Any]:
    code, body = await get_json(f"{url}/status")
    assert code == 200
    return dict(body)


async def test_console_shows_folder_progress_failures_and_holds(
    tmp_path: Path,
    emulator_factory: EmulatorFactory,
    spawn_daemon: SpawnDaemon,
    browser: Browser,
) -> None:
    """Folder, a moving <progress>, the failed file and why, a held batch, the retry button."""
    server = await emulator_factory(bandwidth_bps=BANDWIDTH_BPS)
    job_id, src, _dst = await make_manual_job(server, tmp_path)
    await set_faults(server.url, fail_paths=["*.bad"])
    folder = {"path": str(src), "job": job_id, "name": "ingest", "max_attempts": 2}
    cfg = daemon_config(server.url, tmp_path / "ledger.db", [folder])
    cfg["http"] = {"listen": f"127.0.0.1:{free_port()}", "actions": True, "token": TOKEN}
    daemon = await spawn_daemon(write_toml(tmp_path / "c.toml", cfg))
    url = await daemon.ops_url()

    # A file the emulator fails: given up after its attempts, shown with its reason.
    (src / "broken.bad").write_bytes(os.urandom(2000))
    await daemon.wait_event("files_failed", timeout_s=30)
    [failure] = (await _status(url))["recent_failures"]
    await browser.open(url + "/")
    await _page_has(browser, "#folders", "ingest")
    failed = await _page_has(browser, "#failed", "broken.bad")
    assert failure["error"]
    assert failure["error"] in failed
    assert "Retry the 1 failed file(s) of 'ingest'" in failed

    # A large delivery under a bandwidth limit: the bar moves as its files arrive.
    for i in range(BIG_FILES):
        (src / "big" / f"part-{i:02d}.bin").parent.mkdir(exist_ok=True)
        (src / "big" / f"part-{i:02d}.bin").write_bytes(os.urandom(BIG_SIZE))
    await _page_has(browser, "#in-flight", "ingest")
    seen: set[float] = set()

    async def moved() -> bool | None:
        value = await browser.js(
            "const p = document.querySelector('#in-flight progress[value]');"
            "return p ? p.value : null;"
        )
        if value is not None:
            seen.add(round(float(value), 4))
        inside = {v for v in seen if 0 < v < 1}
        return True if len(inside) >= 2 or (inside and len(seen) >= 3) else None

    await wait_for(moved, timeout_s=40, interval_s=0.3)
    shown = await browser.text("#in-flight")
    assert "files" in shown
    assert "ETA" in shown
    await browser.full_screenshot("console-1280.png")
    await daemon.wait_event("delivery_completed", timeout_s=60)

    # Paused job: the next batch is held, and the page says so and why.
    await set_paused(server, job_id, True)
    (src / "later.txt").write_bytes(b"after the pause\n")
    held = await _page_has(browser, "#held", "job paused", timeout_s=40)
    assert "ingest" in held
    assert "Re-check 'ingest' now" in held

    # The retry action with the token typed once at the top: the file is queued again.
    await browser.js(
        "document.getElementById('console-token').value = arguments[0];"
        "document.querySelector('form[action=\"/actions/retry-failed\"] button').click();",
        TOKEN,
    )
    await _page_has(browser, "#flash", "1 failed file(s) of folder 'ingest' queued again")
    await browser.full_screenshot("console-held-1280.png")

    # A phone: nothing wider than the screen except inside the scrolling tables.
    await browser.size(390, 844)
    await browser.open(url + "/")
    overflow = await browser.js(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;"
    )
    assert overflow <= 1
    await browser.screenshot("console-phone.png")
    await set_paused(server, job_id, False)
