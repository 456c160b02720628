"""The console's HTML, rendered on the server from the /status document; and its cache."""

from __future__ import annotations

import asyncio
import re

from jetwatch.ops.cache import StatusCache
from jetwatch.ops.console import render_live, render_page
from tests.fixtures.console import EVIL, sample


def test_the_page_shows_every_section_without_javascript() -> None:
    page = render_page(sample())
    assert page.startswith("<!doctype html>")
    assert '<meta name="viewport"' in page
    assert '<script src="/static/console.js" defer></script>' in page
    assert '<meta http-equiv="refresh"' in page  # inside <noscript>
    assert "http" not in re.sub(
        r'https://hooks\.example\.com|href="/[^"]*"|src="/[^"]*"|http-equiv', "", page
    )
    for text in ("ingest-1", "not ready", "Jet API", "reachable", "nfs mount", "54 files",
                 "13 waiting", "oldest 1m05s", "dlv-12", "job paused", "1 of 1 objects failed",
                 "files_failed", "answered 500", "up 1h02m", "40"):  # fmt: skip
        assert text in page, text
    assert '<progress value="0.4000" max="1"' in page
    assert "40% · 4/10 files · 1.5 MiB of 3.8 MiB · 97.7 KiB/s · ETA 24s" in page
    assert page.count("<rect ") == 4  # two minutes with deliveries, files and bytes


def test_everything_from_outside_is_escaped() -> None:
    page = render_page(sample(host=EVIL))
    assert EVIL not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.bad" in page


def test_action_forms_only_when_actions_are_on_and_never_a_token() -> None:
    off = render_live(sample())
    assert "<form" not in off
    on = render_page(sample(actions=True))
    assert 'action="/actions/retry-failed"' in on
    assert "Retry the 1 failed file(s) of &#x27;in&#x27;" in on
    assert 'action="/actions/recheck"' in on
    assert 'id="console-token"' in on
    assert 'type="password" name="token"' in on
    assert 'value=""' not in on


def test_flash_and_empty_states() -> None:
    empty = sample(
        folders=[], in_flight=[], held=[], recent_failures=[], events=[], notify={"enabled": False}
    )
    page = render_page(empty, flash="3 failed file(s) of folder 'in' queued again.")
    assert (
        '<p id="flash" role="status">3 failed file(s) of folder &#x27;in&#x27; queued again.</p>'
        in page
    )
    assert "no folders yet" in page
    assert "notifications: off" in page


async def test_status_cache_builds_once_per_ttl_and_serves_stale_while_rebuilding() -> None:
    now = [0.0]
    calls: list[float] = []
    gate = asyncio.Event()

    async def produce() -> dict[str, object]:
        calls.append(now[0])
        if len(calls) == 2:
            await gate.wait()
        return {"n": len(calls)}

    cache = StatusCache(produce, ttl_s=1.0, clock=lambda: now[0])
    first = await asyncio.gather(cache.get(), cache.get(), cache.get())
    assert first == [{"n": 1}] * 3
    assert len(calls) == 1  # single flight
    now[0] = 1.5  # stale: served at once, rebuilt behind
    assert await cache.get() == {"n": 1}
    await asyncio.sleep(0)
    assert len(calls) == 2
    gate.set()
    await asyncio.sleep(0.01)
    assert await cache.get() == {"n": 2}
    now[0] = 10.0  # too old: the answer waits for a fresh one
    assert await cache.get() == {"n": 3}
    cache.invalidate()  # an action changed things: rebuilt at once, though within the ttl
    assert await cache.get() == {"n": 4}
    await cache.aclose()
