"""The daemon's recent events, read from its log: the console's list and the webhooks' source.

The log already is the event stream (one event per state change, ids bound through
contextvars), so the console and the notifications show exactly what the log says. A tap
(:func:`jetwatch.logs.add_tap`) keeps the last ``keep`` events at INFO and above,
redacted like the log itself, and hands the events a subscriber accepts to that
subscriber's bounded buffer. The tap runs in whatever thread logged (the ledger's thread
logs too): it holds a lock for an append and never waits; a full buffer drops the event
and counts it, so nothing that logs is ever slowed by who listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from structlog.typing import EventDict, WrappedLogger

from jetwatch.logs import redact_secrets

DEFAULT_KEEP = 100
_METHOD_LEVELS = {
    "info": "info",
    "msg": "info",
    "warning": "warning",
    "warn": "warning",
    "error": "error",
    "exception": "error",
    "critical": "critical",
    "fatal": "critical",
}
_NOT_FIELDS = frozenset(
    {"event", "level", "timestamp", "logger", "exc_info", "stack_info", "folder"}
)
_MAX_VALUE_CHARS = 200
# The emulators run in test and demo processes beside a daemon; their events are theirs.
_FOREIGN_LOGGERS = ("jetwatch.emulators",)


@dataclass(frozen=True, slots=True)
class Event:
    """One log event of the daemon, redacted."""

    at: float  # wall time
    level: str
    name: str
    folder: str | None
    fields: Mapping[str, object]

    def text(self) -> str:
        """The fields as ``key=value`` pairs, each value shortened for a person to read."""
        parts = []
        for key, value in self.fields.items():
            shown = value if isinstance(value, str) else json.dumps(value, default=str)
            if len(shown) > _MAX_VALUE_CHARS:
                shown = shown[: _MAX_VALUE_CHARS - 1] + "…"
            parts.append(f"{key}={shown}")
        return " ".join(parts)

    def to_json(self) -> dict[str, object]:
        return {
            "at": self.at,
            "level": self.level,
            "event": self.name,
            "folder": self.folder,
            "text": self.text(),
        }


class Subscription:
    """A bounded buffer of accepted events for one asyncio consumer; drops are counted."""

    def __init__(
        self, accept: Callable[[str], bool], capacity: int, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.accept = accept
        self.capacity = max(1, capacity)
        self.dropped = 0
        self._items: deque[Event] = deque()
        self._lock = threading.Lock()
        self._loop = loop
        self._ready = asyncio.Event()

    @property
    def pending(self) -> int:
        return len(self._items)

    def offer(self, event: Event) -> None:
        """Any thread: keep the event unless the buffer is full; wake the consumer."""
        with self._lock:
            if len(self._items) >= self.capacity:
                self.dropped += 1
                return
            self._items.append(event)
        # A closed loop has nobody left to read the buffer.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._ready.set)

    async def take(self) -> list[Event]:
        """Wait for at least one event; return every event buffered, oldest first."""
        while True:
            with self._lock:
                if self._items:
                    items = list(self._items)
                    self._items.clear()
                    return items
                self._ready.clear()
            await self._ready.wait()


class EventFeed:
    """The last ``keep`` events at INFO and above, and the subscribers that want some."""

    def __init__(self, keep: int = DEFAULT_KEEP) -> None:
        self._recent: deque[Event] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._subscribers: tuple[Subscription, ...] = ()

    def tap(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        """A structlog processor (see :func:`jetwatch.logs.add_tap`); leaves the event as is."""
        level = _METHOD_LEVELS.get(method)
        if level is None:
            return event_dict  # debug
        name = getattr(logger, "name", "") or ""
        if name.startswith(_FOREIGN_LOGGERS):
            return event_dict
        clean = redact_secrets(logger, method, dict(event_dict))
        folder = clean.get("folder")
        fields = {k: v for k, v in clean.items() if k not in _NOT_FIELDS}
        event = Event(
            time.time(),
            level,
            str(clean.get("event", "")),
            None if folder is None else str(folder),
            fields,
        )
        with self._lock:
            self._recent.append(event)
        for sub in self._subscribers:
            if sub.accept(event.name):
                sub.offer(event)
        return event_dict

    def recent(self) -> list[Event]:
        """The kept events, newest first."""
        with self._lock:
            return list(reversed(self._recent))

    def subscribe(self, accept: Callable[[str], bool], capacity: int) -> Subscription:
        """A buffer of the events ``accept`` wants; call from the consumer's event loop."""
        sub = Subscription(accept, capacity, asyncio.get_running_loop())
        with self._lock:
            self._subscribers = (*self._subscribers, sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subscribers = tuple(s for s in self._subscribers if s is not sub)
