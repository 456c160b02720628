"""Tests for jetwatch.logs: output formats, context, levels and secret redaction."""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
from collections.abc import Iterator
from datetime import datetime

import pytest
import structlog
from pydantic import SecretStr

from jetwatch.logs import (
    add_tap,
    configure_logging,
    redact_secrets,
    register_secret,
    remove_tap,
)
from jetwatch.ops.events import EventFeed


class _Tty(io.StringIO):
    """A text stream that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo configure_logging's global changes so other test modules see the defaults."""
    root = logging.getLogger()
    ours = logging.getLogger("jetwatch")
    saved = (list(root.handlers), root.level, ours.level)
    yield
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    ours.setLevel(saved[2])


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def _token() -> str:
    return "tok-" + secrets.token_hex(12)


def test_json_lines_off_a_tty() -> None:
    """A non-TTY stream gets one parseable JSON object per event with UTC ISO timestamp."""
    out = io.StringIO()
    configure_logging("debug", "auto", out)
    structlog.get_logger("jetwatch.test").debug("file_detected", size_bytes=12)
    (event,) = _lines(out)
    assert event["event"] == "file_detected"
    assert event["level"] == "debug"
    assert event["logger"] == "jetwatch.test"
    assert event["size_bytes"] == 12
    stamp = datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00"))
    assert stamp.utcoffset() is not None
    assert stamp.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_console_on_a_tty() -> None:
    """A TTY stream gets the readable console renderer, not JSON."""
    out = _Tty()
    configure_logging("info", "auto", out)
    structlog.get_logger("jetwatch.test").info("batch_opened", files=3)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())  # colours on a terminal
    assert "batch_opened" in text
    assert "files=3" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_format_can_be_forced() -> None:
    """fmt="json" wins over a TTY and fmt="console" wins over a pipe."""
    tty = _Tty()
    configure_logging("info", "json", tty)
    structlog.get_logger("jetwatch.test").info("forced_json")
    assert _lines(tty)[0]["event"] == "forced_json"

    pipe = io.StringIO()
    configure_logging("info", "console", pipe)
    structlog.get_logger("jetwatch.test").info("forced_console", n=1)
    assert "forced_console" in pipe.getvalue()
    assert not pipe.getvalue().lstrip().startswith("{")


def test_contextvars_are_merged() -> None:
    """Ids bound with bind_contextvars appear on every event of the context."""
    out = io.StringIO()
    configure_logging("info", "json", out)
    structlog.contextvars.bind_contextvars(folder="cams", batch_id="b-7", delivery_id="d-9")
    structlog.get_logger("jetwatch.test").info("delivery_submitted")
    (event,) = _lines(out)
    assert (event["folder"], event["batch_id"], event["delivery_id"]) == ("cams", "b-7", "d-9")


def test_level_filters_events() -> None:
    """At level warning, info and debug events are dropped and warnings kept."""
    out = io.StringIO()
    configure_logging("WARNING", "json", out)
    log = structlog.get_logger("jetwatch.test")
    log.debug("dropped_debug")
    log.info("dropped_info")
    log.warning("kept_warning")
    assert [e["event"] for e in _lines(out)] == ["kept_warning"]


def test_unknown_level_and_format_are_rejected() -> None:
    """A bad level or format name raises ValueError naming the value and the choices."""
    with pytest.raises(ValueError, match=r"'verbose'.*debug, info, warning, error, critical"):
        configure_logging("verbose", "json", io.StringIO())
    with pytest.raises(ValueError, match="'xml'"):
        configure_logging("info", "xml", io.StringIO())


def test_stdlib_loggers_routed_at_warning_and_above() -> None:
    """aiohttp's stdlib warnings come out as JSON with their logger name; its info does not."""
    out = io.StringIO()
    configure_logging("debug", "json", out)
    logging.getLogger("aiohttp.access").info("GET /healthz 200")
    logging.getLogger("aiohttp.client").warning("retrying %s", "GET /v1/jobs")
    (event,) = _lines(out)
    assert event["logger"] == "aiohttp.client"
    assert event["level"] == "warning"
    assert event["event"] == "retrying GET /v1/jobs"


def test_reconfigure_replaces_the_handler() -> None:
    """A second configure_logging call moves output to the new stream without duplicates."""
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", "json", first)
    configure_logging("info", "json", second)
    structlog.get_logger("jetwatch.test").info("once")
    assert first.getvalue() == ""
    assert len(_lines(second)) == 1


def test_secrets_never_reach_the_stream() -> None:
    """Client secret, bearer token, Authorization header and a secret in an exception are hidden."""
    client_secret, bearer, header_token, tb_secret = _token(), _token(), _token(), _token()
    register_secret(client_secret)
    register_secret(SecretStr(tb_secret))
    out = io.StringIO()
    configure_logging("debug", "json", out)
    log = structlog.get_logger("jetwatch.apis.jet.client")
    log.debug("token_requested", client_secret=client_secret, note=f"used {client_secret}")
    log.debug("request_sent", headers={"Authorization": f"Bearer {header_token}"})
    log.debug("raw", text=f"sent Authorization: Bearer {bearer} to /v1/jobs")
    log.info("config_loaded", jet={"client_id": "abc", "client_secret": SecretStr(bearer)})
    try:
        raise RuntimeError(f"token endpoint rejected {tb_secret}")
    except RuntimeError:
        log.exception("token_failed")
    logging.getLogger("aiohttp.client").warning("retry with %s", client_secret)

    text = out.getvalue()
    for secret in (client_secret, bearer, header_token, tb_secret):
        assert secret not in text
    events = _lines(out)
    assert len(events) == 6
    assert events[0]["client_secret"] == "***"
    assert events[1]["headers"] == {"Authorization": "***"}
    assert events[2]["text"] == "sent Authorization: *** to /v1/jobs"
    assert events[3]["jet"] == {"client_id": "abc", "client_secret": "***"}
    assert "RuntimeError: token endpoint rejected ***" in str(events[4]["exception"])
    assert events[5]["event"] == "retry with ***"


def test_redact_secrets_is_a_plain_processor() -> None:
    """The processor redacts secret-named keys at any depth and leaves the rest alone."""
    event = {
        "event": "token_refreshed",
        "Access_Token": "abc123",
        "nested": {"inner": {"PASSWORD": "hunter22", "user": "ops"}, "refresh_token": None},
        "headers": [("Authorization", "Basic dXNlcjpwYXNz"), ("Accept", "application/json")],
        "body": "grant_type=client_credentials&client_secret=s3cr3t&scope=all",
        "json": '{"access_token": "eyJhbGciOi", "expires_in": 3600}',
        "secret_set": True,
        "size_bytes": 10,
    }
    out = redact_secrets(None, "info", event)
    assert out == {
        "event": "token_refreshed",
        "Access_Token": "***",
        "nested": {"inner": {"PASSWORD": "***", "user": "ops"}, "refresh_token": None},
        "headers": [("Authorization", "***"), ["Accept", "application/json"]],
        "body": "grant_type=client_credentials&client_secret=***&scope=all",
        "json": '{"access_token": "***", "expires_in": 3600}',
        "secret_set": True,
        "size_bytes": 10,
    }


def test_redaction_scrubs_object_reprs_and_secretstr() -> None:
    """SecretStr renders as *** and an object whose repr leaks a secret is scrubbed."""
    leaked = _token()
    register_secret(leaked)
    out = redact_secrets(None, "info", {"s": SecretStr("x"), "err": ValueError(leaked)})
    assert out == {"s": "***", "err": "ValueError('***')"}


def test_short_secrets_are_not_registered() -> None:
    """Values under four characters are ignored so common words are not scrubbed."""
    register_secret("abc")
    assert redact_secrets(None, "info", {"event": "abc abcd"}) == {"event": "abc abcd"}


def test_capture_logs_with_redaction() -> None:
    """structlog's capture_logs can run the redaction processor in other tests too."""
    secret = _token()
    register_secret(secret)
    with structlog.testing.capture_logs(processors=[redact_secrets]) as logs:
        structlog.get_logger("jetwatch.test").info("leak_attempt", detail=f"x{secret}x")
    assert logs[0]["detail"] == "x***x"


def test_module_loggers_follow_reconfiguration() -> None:
    """A module-level logger used before a reconfiguration still reaches capture_logs after it."""
    log = structlog.get_logger("jetwatch.module")
    configure_logging("info", "json", io.StringIO())
    log.info("before")
    configure_logging("info", "json", io.StringIO())
    with structlog.testing.capture_logs() as logs:
        log.info("after")
    assert [e["event"] for e in logs] == ["after"]


def test_taps_see_info_even_when_the_log_level_is_warning() -> None:
    """The console's events and the webhooks do not depend on the configured log level."""
    out = io.StringIO()
    feed = EventFeed()
    configure_logging("warning", "json", out)
    add_tap(feed.tap)
    try:
        structlog.get_logger("jetwatch.test").info("batch_held", folder="in", reason="paused")
        structlog.get_logger("jetwatch.test").debug("hidden")
    finally:
        remove_tap(feed.tap)
    assert [e.name for e in feed.recent()] == ["batch_held"]
    assert "batch_held" not in out.getvalue()  # the log itself stays at warning
