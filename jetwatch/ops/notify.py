"""Notifications: a JSON POST to ``[notify] webhook_url`` per failure, hold, recovery, outage.

What happened is read from the daemon's own events (see :mod:`jetwatch.ops.events`), so a
notification says what the log says, redacted the same way. The rules are pure
(:func:`notice_of`): files given up → ``failed``; a batch held → ``held``; an API, folder or
job that stopped working → ``down``; one that works again, or held batches released →
``recovered``. ``held`` and ``down`` are sent once per thing until it recovers, and
``recovered`` only for something that was announced. Files failing in one folder at about
the same time go out as one message.

The pipeline never waits for a webhook: events wait in a bounded buffer (drops are
counted), one sender POSTs them in turn, each retried with the one Backoff
(``Retry-After`` honoured) up to ``max_attempts``. A failing webhook is visible in
``/status``, ``jetwatch status`` and ``jetwatch_notify_webhook_up``.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

import structlog

from jetwatch import metrics
from jetwatch.domain.backoff import Backoff, Jitter
from jetwatch.errors import ApiError, RejectedError, TransportError
from jetwatch.ops.events import Event, EventFeed

log = structlog.get_logger(__name__)

MAX_FILES_LISTED = 20
DEFAULT_BACKOFF = Backoff(1.0, 60.0, Jitter.EQUAL)


class NotifyEvent(StrEnum):
    """What a notification is about (the ``[notify] events`` values)."""

    FAILED = "failed"
    HELD = "held"
    RECOVERED = "recovered"
    DOWN = "down"


ALL_EVENTS = tuple(NotifyEvent)

# log event → (kind, what it is about); api events are named per target kind.
_BY_NAME: dict[str, tuple[NotifyEvent, str]] = {
    "files_failed": (NotifyEvent.FAILED, "files"),
    "batch_held": (NotifyEvent.HELD, "held"),
    "batches_released": (NotifyEvent.RECOVERED, "held"),
    "folder_down": (NotifyEvent.DOWN, "folder"),
    "watch_mode_chosen": (NotifyEvent.RECOVERED, "folder"),
    "watch_fallback_to_scan": (NotifyEvent.RECOVERED, "folder"),
    "job_unusable": (NotifyEvent.DOWN, "job"),
    "job_ready": (NotifyEvent.RECOVERED, "job"),
    "component_crashed": (NotifyEvent.DOWN, "daemon"),
}
_API_DOWN, _API_OK = "_api_unavailable", "_api_ok"


def wanted(name: str) -> bool:
    """Whether a log event can become a notification (the event buffer keeps only these)."""
    return name in _BY_NAME or name.endswith((_API_DOWN, _API_OK))


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification before it is worded; ``key`` names what is down, held or back."""

    kind: NotifyEvent
    key: str
    source: str
    at: float
    folder: str | None = None
    files: tuple[str, ...] = ()
    count: int = 0
    reason: str = ""


def _classify(name: str) -> tuple[NotifyEvent, str] | None:
    if name in _BY_NAME:
        return _BY_NAME[name]
    if name.endswith(_API_DOWN):
        return NotifyEvent.DOWN, "api:" + name.removesuffix(_API_DOWN)
    if name.endswith(_API_OK):
        return NotifyEvent.RECOVERED, "api:" + name.removesuffix(_API_OK)
    return None


def notice_of(event: Event) -> Notice | None:
    """Pure: the notification a log event stands for, None for the others."""
    found = _classify(event.name)
    if found is None:
        return None
    kind, about = found
    f = event.fields
    key = about if ":" in about or about in ("daemon", "files") else f"{about}:{event.folder}"
    paths = f.get("paths")
    files = tuple(str(p) for p in paths) if isinstance(paths, list | tuple) else ()
    count = f.get("count", f.get("batches", len(files)))
    reason = f.get("reason") or f.get("problem") or f.get("error") or ""
    return Notice(
        kind,
        key,
        event.name,
        event.at,
        folder=event.folder,
        files=files,
        count=count if isinstance(count, int) else len(files),
        reason=str(reason),
    )


def coalesce(notices: Iterable[Notice]) -> list[Notice]:
    """Failures of one folder become one notice (files and counts added); order kept."""
    merged: list[Notice] = []
    failed_at: dict[str | None, int] = {}
    for n in notices:
        at = failed_at.get(n.folder) if n.kind is NotifyEvent.FAILED else None
        if at is None:
            if n.kind is NotifyEvent.FAILED:
                failed_at[n.folder] = len(merged)
            merged.append(n)
            continue
        first = merged[at]
        reason = first.reason if n.reason == first.reason else f"{first.reason}; {n.reason}"
        merged[at] = replace(
            first, files=first.files + n.files, count=first.count + n.count, reason=reason
        )
    return merged


def _what(n: Notice) -> str:
    if n.key.startswith("api:"):
        return "the API"
    if n.key.startswith("job:"):
        return f"the target of folder {n.folder!r}"
    if n.key == "daemon":
        return "the daemon"
    return f"folder {n.folder!r}"


def text_of(n: Notice, host: str) -> str:
    """The one human line a chat webhook shows as it is."""
    tail = f": {n.reason}" if n.reason else ""
    if n.kind is NotifyEvent.FAILED:
        shown = ", ".join(n.files[:5]) + (f" and {n.count - 5} more" if n.count > 5 else "")
        return f"jetwatch on {host}: {n.count} file(s) failed in folder {n.folder!r}: {shown}{tail}"
    if n.kind is NotifyEvent.HELD:
        return f"jetwatch on {host}: batches of folder {n.folder!r} are held{tail}"
    if n.kind is NotifyEvent.DOWN:
        return f"jetwatch on {host}: {_what(n)} is down{tail}"
    return f"jetwatch on {host}: {_what(n)} recovered{tail}"


def payload_of(n: Notice, host: str) -> dict[str, Any]:
    """The JSON body: a ``text`` line for chat webhooks, the facts for everything else."""
    return {
        "text": text_of(n, host),
        "event": n.kind.value,
        "folder": n.folder,
        "files": list(n.files[:MAX_FILES_LISTED]),
        "count": n.count,
        "reason": n.reason,
        "host": host,
        "at": datetime.fromtimestamp(n.at, UTC).isoformat(timespec="seconds"),
        "source": n.source,
    }


class Webhook(Protocol):
    origin: str

    async def post(self, body: dict[str, Any]) -> None: ...
    async def aclose(self) -> None: ...


@dataclass(slots=True)
class NotifyState:
    """What status shows about the webhook."""

    origin: str
    events: tuple[str, ...]
    ok: bool | None = None  # None: nothing sent yet
    last_error: str = ""
    last_error_at: float | None = None
    last_sent_at: float | None = None
    sent: int = 0
    errors: int = 0  # failed attempts
    given_up: int = 0
    dropped: int = 0
    queued: int = 0
    open: set[str] = field(default_factory=set)  # keys announced down or held

    def to_json(self) -> dict[str, Any]:
        keys = ("origin", "events", "ok", "last_error", "last_error_at", "last_sent_at")
        counts = ("sent", "errors", "given_up", "dropped", "queued")
        return {"enabled": True, **{k: getattr(self, k) for k in keys + counts}}


class Notifier:
    """Turns the daemon's events into webhook POSTs; a long-lived component with ``run()``."""

    def __init__(
        self,
        feed: EventFeed,
        webhook: Webhook,
        *,
        events: Iterable[str] = ALL_EVENTS,
        queue_size: int = 100,
        max_attempts: int = 5,
        backoff: Backoff = DEFAULT_BACKOFF,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        host: str | None = None,
    ) -> None:
        self._feed = feed
        self._webhook = webhook
        self._kinds = {NotifyEvent(e) for e in events}
        self._queue_size = queue_size
        self._max_attempts = max(1, max_attempts)
        self._backoff = backoff
        self._sleep = sleep
        self._host = host or socket.gethostname()
        self.state = NotifyState(
            webhook.origin, tuple(k.value for k in ALL_EVENTS if k in self._kinds)
        )
        self._seen_drops = 0

    async def run(self) -> None:
        sub = self._feed.subscribe(wanted, self._queue_size)
        metrics.NOTIFY_WEBHOOK_UP.set(1)
        try:
            while True:
                events = await sub.take()
                self._count_drops(sub.dropped, sub.pending)
                try:
                    notices = [n for e in events if (n := self._admit(notice_of(e))) is not None]
                    for notice in coalesce(notices):
                        await self._deliver(notice)
                        self._count_drops(sub.dropped, sub.pending)
                except Exception as exc:  # a bug here must not stop the daemon: say it, go on
                    log.error("notify_error", error=repr(exc), exc_info=exc)
        finally:
            self._feed.unsubscribe(sub)
            await self._webhook.aclose()

    def _count_drops(self, dropped: int, pending: int) -> None:
        new = dropped - self._seen_drops
        if new > 0:
            metrics.NOTIFICATIONS_DROPPED.labels("queue_full").inc(new)
            log.warning("notify_dropped", events=new, effect="the buffer was full")
        self._seen_drops = dropped
        self.state.dropped = dropped
        self.state.queued = pending

    def _admit(self, notice: Notice | None) -> Notice | None:
        """Latch down/held until recovered; recovered only for what was announced."""
        if notice is None:
            return None
        opened = self.state.open
        if notice.kind in (NotifyEvent.DOWN, NotifyEvent.HELD):
            if notice.key in opened:
                return None
            opened.add(notice.key)
        elif notice.kind is NotifyEvent.RECOVERED:
            if notice.key not in opened:
                return None
            opened.discard(notice.key)
        return notice if notice.kind in self._kinds else None

    async def _deliver(self, notice: Notice) -> None:
        body = payload_of(notice, self._host)
        for attempt in range(self._max_attempts):
            try:
                await self._webhook.post(body)
            except ApiError as exc:
                self._failed(exc)
                if isinstance(exc, RejectedError) or attempt + 1 == self._max_attempts:
                    break
                delay_s = self._backoff.delay_s(attempt, random.random())
                if isinstance(exc, TransportError) and exc.retry_after_s is not None:
                    delay_s = min(max(delay_s, exc.retry_after_s), self._backoff.max_s)
                await self._sleep(delay_s)
                continue
            self._sent(notice)
            return
        self.state.given_up += 1
        metrics.NOTIFICATIONS_DROPPED.labels("gave_up").inc()
        log.error(
            "notify_gave_up",
            kind=notice.kind.value,
            folder=notice.folder,
            error=self.state.last_error,
        )

    def _failed(self, exc: ApiError) -> None:
        state = self.state
        if state.ok is not False or state.last_error != str(exc):
            log.warning("notify_failed", error=str(exc))
        state.ok, state.last_error, state.last_error_at = False, str(exc), time.time()
        state.errors += 1
        metrics.NOTIFY_ERRORS.inc()
        metrics.NOTIFY_WEBHOOK_UP.set(0)

    def _sent(self, notice: Notice) -> None:
        state = self.state
        if state.ok is False:
            log.info("notify_ok", origin=state.origin)
        state.ok, state.last_sent_at = True, time.time()
        state.sent += 1
        metrics.NOTIFICATIONS_SENT.labels(notice.kind.value).inc()
        metrics.NOTIFY_WEBHOOK_UP.set(1)
