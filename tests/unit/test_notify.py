"""Notification rules and the sender: what becomes a message, latching, coalescing, retries."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jetwatch.domain.backoff import Backoff, Jitter
from jetwatch.errors import RejectedError, TransportError
from jetwatch.ops.events import Event, EventFeed
from jetwatch.ops.notify import (
    Notice,
    Notifier,
    NotifyEvent,
    coalesce,
    notice_of,
    payload_of,
    text_of,
    wanted,
)

T0 = 1_700_000_000.0


def event(name: str, folder: str | None = "in", **fields: Any) -> Event:
    return Event(T0, "info", name, folder, fields)


def test_log_events_map_to_the_four_kinds() -> None:
    failed = notice_of(
        event("files_failed", reason="1 of 1 objects failed", paths=["a.bad"], count=1)
    )
    assert failed == Notice(
        NotifyEvent.FAILED,
        "files",
        "files_failed",
        T0,
        "in",
        ("a.bad",),
        1,
        "1 of 1 objects failed",
    )
    held = notice_of(event("batch_held", reason="job paused"))
    assert held is not None
    assert (held.kind, held.key, held.reason) == (NotifyEvent.HELD, "held:in", "job paused")
    down = notice_of(event("jet_api_unavailable", folder=None, problem="Jet API unreachable"))
    assert down is not None
    assert (down.kind, down.key, down.reason) == (
        NotifyEvent.DOWN,
        "api:jet",
        "Jet API unreachable",
    )
    back = notice_of(event("jet_api_ok", folder=None))
    assert back is not None
    assert (back.kind, back.key) == (NotifyEvent.RECOVERED, "api:jet")
    released = notice_of(event("batches_released", batches=2, reason="target usable again"))
    assert released is not None
    assert (released.kind, released.key, released.count) == (NotifyEvent.RECOVERED, "held:in", 2)
    assert notice_of(event("delivery_completed")) is None
    assert wanted("folder_down")
    assert wanted("integration_manager_api_ok")
    assert not wanted("file_delivered")


def test_failures_of_one_folder_are_one_message() -> None:
    a = Notice(NotifyEvent.FAILED, "files", "files_failed", T0, "in", ("a",), 1, "bad")
    b = Notice(NotifyEvent.FAILED, "files", "files_failed", T0, "in", ("b",), 1, "worse")
    c = Notice(NotifyEvent.FAILED, "files", "files_failed", T0, "other", ("c",), 1, "bad")
    held = Notice(NotifyEvent.HELD, "held:in", "batch_held", T0, "in", (), 0, "job paused")
    merged = coalesce([a, held, b, c])
    assert [(n.folder, n.files, n.count, n.reason) for n in merged] == [
        ("in", ("a", "b"), 2, "bad; worse"),
        ("in", (), 0, "job paused"),
        ("other", ("c",), 1, "bad"),
    ]


def test_the_text_line_and_the_payload() -> None:
    n = Notice(NotifyEvent.FAILED, "files", "files_failed", T0, "in", tuple("abcdefg"), 7, "why")
    text = text_of(n, "ingest-1")
    assert (
        text
        == "jetwatch on ingest-1: 7 file(s) failed in folder 'in': a, b, c, d, e and 2 more: why"
    )
    body = payload_of(n, "ingest-1")
    assert body["event"] == "failed"
    assert body["files"] == list("abcdefg")
    assert body["text"] == text
    assert body["at"] == "2023-11-14T22:13:20+00:00"
    down = Notice(NotifyEvent.DOWN, "api:jet", "jet_api_unavailable", T0, None, (), 0, "refused")
    assert text_of(down, "h") == "jetwatch on h: the API is down: refused"


class FakeWebhook:
    """Records what it was sent; fails the first ``failures`` POSTs with ``error``."""

    origin = "https://hooks.example.com"

    def __init__(self, failures: int = 0, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or TransportError("webhook at https://hooks.example.com answered 503")
        self.sent: list[dict[str, Any]] = []
        self.attempts = 0
        self.got = asyncio.Event()

    async def post(self, body: dict[str, Any]) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise self.error
        self.sent.append(body)
        self.got.set()

    async def aclose(self) -> None:
        pass


async def _run(notifier: Notifier, feed: EventFeed, hook: FakeWebhook, *events: Event, sent: int):
    task = asyncio.create_task(notifier.run())
    await asyncio.sleep(0)
    for e in events:
        feed.tap(
            type("L", (), {"name": "jetwatch.x"})(),
            "info",
            {"event": e.name, "folder": e.folder, **e.fields},
        )

    async def enough() -> None:
        while len(hook.sent) < sent or notifier.state.queued:
            hook.got.clear()
            await asyncio.wait_for(hook.got.wait(), 5)

    await enough()
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_held_and_down_are_sent_once_until_recovered() -> None:
    feed, hook = EventFeed(), FakeWebhook()
    notifier = Notifier(feed, hook, host="h")
    await _run(
        notifier, feed, hook,
        event("jet_api_ok", folder=None),  # start-up: nothing was down, nothing to say
        event("batch_held", reason="job paused"),
        event("batch_held", reason="job paused"),
        event("batches_released", batches=2, reason="target usable again"),
        event("batch_held", reason="job paused"),
        sent=3,
    )  # fmt: skip
    assert [b["event"] for b in hook.sent] == ["held", "recovered", "held"]
    assert notifier.state.sent == 3
    assert notifier.state.ok is True


async def test_events_not_chosen_are_not_sent() -> None:
    feed, hook = EventFeed(), FakeWebhook()
    notifier = Notifier(feed, hook, events=["failed"], host="h")
    await _run(
        notifier, feed, hook,
        event("batch_held", reason="job paused"),
        event("files_failed", reason="r", paths=["x"], count=1),
        sent=1,
    )  # fmt: skip
    assert [b["event"] for b in hook.sent] == ["failed"]


async def test_a_failing_webhook_is_retried_with_backoff_then_shown() -> None:
    feed, hook = EventFeed(), FakeWebhook(failures=2)
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    notifier = Notifier(feed, hook, host="h", backoff=Backoff(1.0, 60.0, Jitter.NONE), sleep=sleep)
    await _run(
        notifier, feed, hook, event("files_failed", reason="r", paths=["x"], count=1), sent=1
    )
    assert slept == [1.0, 2.0]
    assert hook.attempts == 3
    assert notifier.state.errors == 2
    assert notifier.state.ok is True
    assert "503" in notifier.state.last_error


async def test_a_refused_post_is_not_retried_and_counts_as_given_up() -> None:
    feed = EventFeed()
    hook = FakeWebhook(failures=99, error=RejectedError("webhook answered 404", status=404))
    notifier = Notifier(feed, hook, host="h", sleep=lambda s: asyncio.sleep(0))
    task = asyncio.create_task(notifier.run())
    await asyncio.sleep(0)
    feed.tap(
        type("L", (), {"name": "jetwatch.x"})(),
        "error",
        {"event": "files_failed", "folder": "in", "reason": "r", "paths": ["x"], "count": 1},
    )

    async def given_up() -> None:
        while notifier.state.given_up < 1:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(given_up(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert hook.attempts == 1
    assert notifier.state.ok is False
    assert notifier.state.to_json()["ok"] is False
