"""The commands that read or mend the ledger: ``status`` and ``ledger move-aside | retry-failed``.

They need no secret and no folder: an operator who cannot read the credentials can still
see what the daemon did, with it running or not.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from jetwatch.app import status, status_watch
from jetwatch.app.commands import command_logging
from jetwatch.app.daemon_client import daemon_view, render_daemon
from jetwatch.app.ledger_copy import copy_command
from jetwatch.app.ledgers import open_ledger
from jetwatch.app.output import plural, print_problems
from jetwatch.config.load import load_settings
from jetwatch.config.settings import Settings
from jetwatch.errors import ConfigError, ExitCode, LedgerError, LedgerUnavailableError
from jetwatch.ledger.db import check_ledger
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


async def status_command(
    path: Path | None, *, as_json: bool, watch_s: float | None = None
) -> ExitCode:
    """What the ledger knows, and what the daemon answers if it runs (``watch_s``: live).

    Exit 0 only when the daemon answers and is ready; 1 when it answers not ready (the
    reasons are printed), 4 when no daemon answers, 3 when the ledger is refused.
    """
    settings = settings_for_ledger(path)
    if settings is None:
        return ExitCode.CONFIG
    if not settings.ledger.shared and not settings.ledger.path.exists():
        print(f"no ledger at {settings.ledger.path} yet: the daemon has not run", file=sys.stderr)
        return ExitCode.FAILURE
    if watch_s is not None:
        return await status_watch.watch(settings, watch_s)
    try:
        snapshot, fleet = await status.load_status(settings.ledger, time.time())
    except LedgerError as exc:  # unreachable, refused, missing, newer: one line
        print(f"jetwatch status: {exc}", file=sys.stderr)
        return ExitCode.LEDGER
    daemon = daemon_view(settings.http.listen)
    progress = status_watch.progress_of(daemon)
    if as_json:
        data = status.to_json(snapshot)
        for item in data["in_flight"]:
            item["progress"] = None if progress is None else progress.get(item["batch_id"])
        data["daemon"] = daemon
        if fleet.shared:
            data["fleet"] = status.fleet_json(fleet)
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(render_daemon(daemon))
        print(status.render_text(snapshot, progress), end="")
        lines = status.render_fleet(fleet)
        if lines:
            print("\n".join(lines))
    if not daemon["reachable"]:
        return ExitCode.NO_DAEMON
    return ExitCode.OK if daemon["ready"] else ExitCode.FAILURE


async def ledger_command(
    path: Path | None,
    action: str,
    *,
    force: bool = False,
    to: str = "",
    password_file: Path | None = None,
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
        return _move_aside(settings, force=force)
    try:
        async with await open_ledger(settings.ledger) as ledger:
            count = await ledger.requeue_failed(time.time())
    except LedgerError as exc:
        print(f"jetwatch ledger: {exc}", file=sys.stderr)
        return ExitCode.LEDGER
    print(f"{plural(count, 'failed file')} queued again (a running daemon picks them up)")
    return ExitCode.OK


def _move_aside(settings: Settings, *, force: bool) -> ExitCode:
    ledger_path = settings.ledger.path
    daemon = daemon_view(settings.http.listen)
    if daemon["reachable"]:
        # It would keep writing into the moved file and the next start would re-send.
        print(f"the daemon answers at {daemon['url']}: stop it first", file=sys.stderr)
        return ExitCode.FAILURE
    if not force and not _refused(ledger_path):
        return ExitCode.FAILURE
    try:
        moved = SqliteLedger.move_aside(ledger_path, time.time())
    except (LedgerError, OSError) as exc:
        print(f"jetwatch ledger: {exc}", file=sys.stderr)
        return ExitCode.FAILURE
    print(f"moved {ledger_path} to {moved}; a new ledger starts on the next run")
    return ExitCode.OK


def _refused(path: Path) -> bool:
    """True when the daemon would refuse the ledger (what move-aside is for); else say why
    moving it aside needs --force."""
    try:
        check_ledger(path)
    except LedgerUnavailableError as exc:
        why = f"cannot be read right now ({exc}), so it may well be healthy"
    except LedgerError:
        return True
    else:
        why = "is healthy"
    print(
        f"jetwatch ledger: {path} {why}: moving it aside starts an empty ledger, and every "
        "file still in the folders is offered again; pass --force to do it anyway",
        file=sys.stderr,
    )
    return False
