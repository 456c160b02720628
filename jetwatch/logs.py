"""Logging setup: structlog JSON lines off a TTY, a console view on one, secrets always redacted."""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Mapping
from typing import TextIO

import structlog
from pydantic import SecretBytes, SecretStr
from structlog.typing import EventDict, Processor, WrappedLogger

from jetwatch.logwriter import BackgroundWriter

__all__ = ["add_tap", "configure_logging", "redact_secrets", "register_secret", "remove_tap"]

REDACTED = "***"
MIN_SECRET_CHARS = 4
_MAX_DEPTH = 8

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_FORMATS = ("auto", "json", "console")

_SENSITIVE_NAMES = r"secret|token|passw(?:or)?d|authorization|credential|api_?key|cookie"
_SECRET_KEY = re.compile(_SENSITIVE_NAMES, re.IGNORECASE)
_BEARER = re.compile(r"\b(Bearer)\s+[^\s'\",;)}\]]+", re.IGNORECASE)
# key=value (form bodies, query strings), 'key': 'value' (JSON, reprs) and header lines
# "Authorization: Basic ..." inside free text such as exception messages. Unquoted
# "key: value" is left alone on purpose: it would mangle type hints in tracebacks.
# Any word before a separator matches (possessively: linear time on huge strings); the
# replacement then checks whether it names a secret.
_KEY_VALUE = re.compile(
    r"(?<![\w-])(?P<key>[\w-]++)"
    r"(?P<sep>=|[\"']\s*:\s*[\"']?|:\s*(?=(?:Basic|Bearer|Digest|Negotiate)\s))"
    r"(?P<value>(?:(?:Basic|Bearer|Digest|Negotiate)\s+)?[^\s'\"&,;)}\]]+)",
    re.IGNORECASE,
)

# The registry is replaced as a whole (never mutated) so readers need no lock.
_registry_lock = threading.Lock()
_registered: frozenset[str] = frozenset()
_registered_re: re.Pattern[str] | None = None

_handler: logging.Handler | None = None
# Processors that see every event of jetwatch's own loggers before the level filter, e.g.
# the console's recent events and the webhooks (ops/events.py). Replaced as a whole.
_taps: tuple[Processor, ...] = ()


def add_tap(tap: Processor) -> None:
    """Show ``tap`` every event (any level, not yet redacted); it must not block or raise."""
    global _taps
    with _registry_lock:
        _taps = (*_taps, tap)


def remove_tap(tap: Processor) -> None:
    global _taps
    with _registry_lock:
        _taps = tuple(t for t in _taps if t is not tap)


def _run_taps(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    for tap in _taps:
        try:
            tap(logger, method, event_dict)
        except Exception:  # noqa: S112 - an observer must never break logging itself
            continue
    return event_dict


def register_secret(value: str | SecretStr) -> None:
    """Scrub ``value`` from every later log line; values under 4 characters are ignored."""
    global _registered, _registered_re
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if len(text) < MIN_SECRET_CHARS:
        return
    with _registry_lock:
        if text in _registered:
            return
        _registered = _registered | {text}
        # Longest first, so a secret that contains another one is scrubbed whole.
        ordered = sorted(_registered, key=len, reverse=True)
        _registered_re = re.compile("|".join(re.escape(s) for s in ordered))


def _scrub_text(text: str) -> str:
    pattern = _registered_re
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    text = _BEARER.sub(rf"\1 {REDACTED}", text)
    return _KEY_VALUE.sub(_redact_key_value, text)


def _redact_key_value(match: re.Match[str]) -> str:
    if _SECRET_KEY.search(match["key"]) is None:
        return match[0]
    return f"{match['key']}{match['sep']}{REDACTED}"


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and _SECRET_KEY.search(key) is not None


def _redact_value(value: object, depth: int) -> object:
    if isinstance(value, str):
        return _scrub_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, SecretStr | SecretBytes):
        return REDACTED
    if depth >= _MAX_DEPTH:
        return _scrub_text(repr(value))
    if isinstance(value, Mapping):
        return {k: _redact_item(k, v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        # Header lists come as (name, value) pairs: treat them like a mapping entry.
        if isinstance(value, tuple) and len(value) == 2 and _is_secret_key(value[0]):
            return (value[0], _redact_item(value[0], value[1], depth + 1))
        return [_redact_value(item, depth + 1) for item in value]
    # Renderers fall back to repr() for other objects; keep the object unless its repr leaks.
    text = repr(value)
    scrubbed = _scrub_text(text)
    return value if scrubbed == text else scrubbed


def _redact_item(key: object, value: object, depth: int) -> object:
    if _is_secret_key(key) and value is not None and not isinstance(value, bool):
        return REDACTED
    return _redact_value(value, depth)


def redact_secrets(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """Replace secret-named values, bearer tokens and registered secrets with ``***``."""
    return {key: _redact_item(key, value, 0) for key, value in event_dict.items()}


def _level_number(level: str) -> int:
    try:
        return _LEVELS[level.strip().lower()]
    except KeyError:
        known = ", ".join(_LEVELS)
        raise ValueError(f"unknown log level {level!r}; use one of: {known}") from None


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(callable(isatty) and isatty())
    except ValueError:  # a closed stream
        return False


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _formatter(as_json: bool, colors: bool) -> structlog.stdlib.ProcessorFormatter:
    renderer: Processor
    if as_json:
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=colors)
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Exceptions are rendered to text first so the redaction sees the traceback.
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
    )


def configure_logging(
    level: str = "info",
    fmt: str = "auto",
    stream: TextIO | None = None,
    *,
    background: bool = False,
) -> None:
    """Send jetwatch's events at ``level`` and other libraries' warnings to ``stream``.

    ``fmt`` is "json", "console" or "auto" (JSON unless ``stream`` is a TTY); the stream
    defaults to stderr so command output on stdout stays clean. With ``background`` (the
    daemon) lines are written by a thread of their own (:mod:`jetwatch.logwriter`), so a
    stalled reader of the stream never stalls the event loop. Calling it again replaces
    the previous setup.
    """
    global _handler
    level_no = _level_number(level)
    if fmt not in _FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; use one of: {', '.join(_FORMATS)}")
    out = sys.stderr if stream is None else stream
    tty = _isatty(out)
    as_json = fmt == "json" or (fmt == "auto" and not tty)

    handler: logging.Handler = BackgroundWriter(out) if background else logging.StreamHandler(out)
    # https://no-color.org: an empty NO_COLOR does not count.
    handler.setFormatter(_formatter(as_json, colors=tty and not os.environ.get("NO_COLOR")))
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
        _handler.close()  # a background writer writes what it holds, then its thread ends
    root.addHandler(handler)
    _handler = handler
    # Other libraries (aiohttp, asyncio) only at WARNING and above; our own at ``level``.
    root.setLevel(max(level_no, logging.WARNING))
    logging.getLogger("jetwatch").setLevel(level_no)

    # Level and format live in the handler, so the chain is the same for every call.
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _run_taps,  # before the level filter: observers see INFO at level "warning" too
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a cached module logger would keep this chain through a later
        # reconfiguration, and structlog.testing.capture_logs() would miss its events.
        cache_logger_on_first_use=False,
    )
