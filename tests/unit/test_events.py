"""The event feed: the log's events at INFO and above, redacted, for the console and webhooks."""

from __future__ import annotations

import asyncio
import threading

from jetwatch import logs
from jetwatch.ops.events import EventFeed


class _Logger:
    name = "jetwatch.pipeline.tracker"


def _log(feed: EventFeed, method: str, **fields: object) -> None:
    feed.tap(_Logger(), method, dict(fields))


def test_keeps_info_and_above_newest_first_at_most_keep() -> None:
    feed = EventFeed(keep=3)
    _log(feed, "debug", event="noise")
    for i in range(5):
        _log(feed, "info", event=f"e{i}", folder="in", n=i)
    _log(feed, "warning", event="warned")
    recent = feed.recent()
    assert [e.name for e in recent] == ["warned", "e4", "e3"]
    assert recent[1].folder == "in"
    assert recent[1].fields == {"n": 4}
    assert recent[1].to_json()["text"] == "n=4"
    assert recent[0].level == "warning"


def test_secrets_are_redacted_like_the_log() -> None:
    logs.register_secret("hunter2-very-secret")
    feed = EventFeed()
    _log(feed, "error", event="x", error="login failed with hunter2-very-secret", token="abc123")
    [event] = feed.recent()
    assert "hunter2" not in event.text()
    assert event.fields["token"] == logs.REDACTED


def test_emulator_events_are_not_the_daemons() -> None:
    class Emu:
        name = "jetwatch.emulators.jet.transfers"

    feed = EventFeed()
    feed.tap(Emu(), "info", {"event": "delivery_finished"})
    assert feed.recent() == []


async def test_subscribers_get_what_they_accept_bounded_and_from_any_thread() -> None:
    """A full buffer drops and counts; events logged in another thread wake the consumer."""
    feed = EventFeed()
    sub = feed.subscribe(lambda name: name.startswith("want"), capacity=2)
    _log(feed, "info", event="other")
    for i in range(3):
        _log(feed, "info", event=f"want{i}")
    assert sub.dropped == 1
    assert [e.name for e in await sub.take()] == ["want0", "want1"]
    thread = threading.Thread(
        target=_log,
        args=(
            feed,
            "error",
        ),
        kwargs={"event": "want-t"},
    )
    getter = asyncio.create_task(sub.take())
    await asyncio.sleep(0)
    thread.start()
    got = await asyncio.wait_for(getter, 5)
    thread.join()
    assert [e.name for e in got] == ["want-t"]
    feed.unsubscribe(sub)
    _log(feed, "info", event="want-late")
    assert sub.pending == 0
