"""``jetwatch status --watch``: the report redrawn live, with each delivery's progress.

Progress (bytes done of total, rate, ETA) is known only to the running daemon; ``status``
asks its ``/status`` for it (see :mod:`jetwatch.app.daemon_client`) and shows it in three
columns of the IN FLIGHT table. ``--watch`` redraws the whole report every ``--interval``
seconds on the terminal's alternate screen (restored on exit) until Ctrl+C, which ends
it with exit code 0; off a terminal each report is printed after the previous one.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from jetwatch.app import status
from jetwatch.app.daemon_client import daemon_view, render_daemon
from jetwatch.config.settings import Settings
from jetwatch.errors import ExitCode, LedgerError

_ENTER, _LEAVE, _HOME_CLEAR = "\x1b[?1049h\x1b[?25l", "\x1b[?25h\x1b[?1049l", "\x1b[H\x1b[2J"


def progress_of(daemon: Mapping[str, Any]) -> status.Progress | None:
    """batch id → progress from the daemon's answer; None when the daemon did not answer."""
    if not daemon.get("reachable"):
        return None
    found = daemon.get("progress") or {}
    return {int(k): v for k, v in found.items() if isinstance(v, Mapping)}


async def report(settings: Settings) -> str:
    """One whole ``jetwatch status`` report: the daemon section, then the ledger's."""
    snapshot = await status.load_snapshot(settings.ledger.path, time.time())
    daemon = await asyncio.to_thread(daemon_view, settings.http.listen)
    return render_daemon(daemon) + "\n" + status.render_text(snapshot, progress_of(daemon))


async def watch(settings: Settings, interval_s: float, out: TextIO | None = None) -> ExitCode:
    """Redraw the report every ``interval_s`` until SIGINT or SIGTERM."""
    stream = out or sys.stdout
    tty = stream.isatty()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if tty:
        stream.write(_ENTER)
    try:
        while not stop.is_set():
            try:
                text = await report(settings)
            except LedgerError as exc:
                text = f"jetwatch status: {exc}\n"
            stream.write((_HOME_CLEAR if tty else "") + text + ("" if tty else "\n"))
            stream.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if tty:
            stream.write(_LEAVE)
            stream.flush()
    return ExitCode.OK
