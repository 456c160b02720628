"""The commands that read or mend the ledger: ``status`` and ``ledger move-aside | retry-failed``.

They need no secret and no folder: an operator who cannot read the credentials can still
see what the daemon did, with it running or not.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from jetwatch.app import status
from jetwatch.app.commands import command_logging
from jetwatch.app.daemon_client import daemon_view, render_daemon
from jetwatch.app.ledger_copy import copy_command
from jetwatch.app.ledgers import open_ledger
from jetwatch.app.output import print_problems
from jetwatch.config.load import load_settings
from jetwatch.config.settings import Settings
from jetwatch.errors import ConfigError, ExitCode, LedgerError
from jetwatch.ledger.sqlite import SqliteLedger


def settings_for_ledger(path: Path | None) -> Settings | None:
    """Settings for commands that only use the ledger: no secret needed, no folder required."""
    try:
        settings = load_settings(path, require_folders=False, require_credentials=False)
    except ConfigError as exc:
        print_problems(exc.problems)
        return None
    command_logging(settings)
    return settings


async def status_command(path: Path | None, *, as_json: bool) -> ExitCode:
    """What the ledger knows, and what the daemon answers if it runs."""
    settings = settings_for_ledger(path)
    if settings is None:
        return ExitCode.CONFIG
    if not settings.ledger.shared and not settings.ledger.path.exists():
        print(f"no ledger at {settings.ledger.path} yet: the daemon has not run", file=sys.stderr)
        return ExitCode.FAILURE
    try:
        snapshot, fleet = await status.load_status(settings.ledger, time.time())
    except LedgerError as exc:  # unreachable, refused, missing, newer: one line
        print(f"jetwatch status: {exc}", file=sys.stderr)
        return ExitCode.LEDGER
    daemon = daemon_view(settings.http.listen)
    if as_json:
        data = status.to_json(snapshot)
        data["daemon"] = daemon
        if fleet.shared:
            data["fleet"] = status.fleet_json(fleet)
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(render_daemon(daemon))
        print(status.render_text(snapshot), end="")
        lines = status.render_fleet(fleet)
        if lines:
            print("\n".join(lines))
    return ExitCode.OK


async def ledger_command(
    path: Path | None, action: str, *, to: str = "", password_file: Path | None = None
) -> ExitCode:
    """``move-aside`` (a refused ledger), ``retry-failed`` (FAILED files queued again) or
    ``copy --to URL`` (a SQLite ledger's memory into PostgreSQL)."""
    settings = settings_for_ledger(path)
    if settings is None:
        return ExitCode.CONFIG
    ledger_path = settings.ledger.path
    if action == "copy":
        return await copy_command(settings, to, password_file)
    if not settings.ledger.shared and not ledger_path.exists():
        print(f"no ledger at {ledger_path}: nothing to do")
        return ExitCode.OK
    if action == "move-aside":
        if settings.ledger.shared:
            print("move-aside is for a SQLite ledger; [ledger] url is PostgreSQL", file=sys.stderr)
            return ExitCode.CONFIG
        return _move_aside(settings)
    try:
        async with await open_ledger(settings.ledger) as ledger:
            count = await ledger.requeue_failed(time.time())
    except LedgerError as exc:
        print(f"jetwatch ledger: {exc}", file=sys.stderr)
        return ExitCode.LEDGER
    print(f"{count} failed files queued again (a running daemon picks them up)")
    return ExitCode.OK


def _move_aside(settings: Settings) -> ExitCode:
    ledger_path = settings.ledger.path
    daemon = daemon_view(settings.http.listen)
    if daemon["reachable"]:
        # It would keep writing into the moved file and the next start would re-send.
        print(f"the daemon answers at {daemon['url']}: stop it first", file=sys.stderr)
        return ExitCode.FAILURE
    try:
        moved = SqliteLedger.move_aside(ledger_path, time.time())
    except (LedgerError, OSError) as exc:
        print(f"jetwatch ledger: {exc}", file=sys.stderr)
        return ExitCode.FAILURE
    print(f"moved {ledger_path} to {moved}; a new ledger starts on the next run")
    return ExitCode.OK
