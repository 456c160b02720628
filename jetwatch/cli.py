"""Command line: ``jetwatch run | check | status | jobs | ledger | emulator | im-emulator | demo``.

Exit codes: 0 ok, 1 runtime failure (also: a job is paused, the daemon was forced to stop
by a second signal or overran its shutdown deadline), 2 bad usage or configuration (one
line per problem, naming the key), 3 ledger refused (corrupt or not a ledger; see
``ledger move-aside``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from jetwatch import __version__

if TYPE_CHECKING:
    from jetwatch.config import Settings

EXIT_OK, EXIT_FAIL, EXIT_CONFIG, EXIT_LEDGER = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jetwatch", description="Hot-folder daemon for the Signiant Jet API."
    )
    parser.add_argument("--version", action="version", version=f"jetwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--config", metavar="PATH", help="TOML config file (default: $JETWATCH_CONFIG)"
        )
        return p

    with_config("run", "run the daemon")
    check = with_config("check", "validate the configuration (offline unless --online)")
    check.add_argument(
        "--online", action="store_true", help="also log in and resolve each folder's job"
    )
    st = with_config("status", "show what the ledger knows (daemon running or not)")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    with_config("jobs", "list the jobs the credentials can see")
    ledger = with_config("ledger", "ledger maintenance")
    ledger.add_argument(
        "action",
        choices=["move-aside", "retry-failed"],
        help="move-aside: rename a refused ledger so a new one starts "
        "(everything not recorded elsewhere may be sent again); "
        "retry-failed: queue FAILED files for delivery again",
    )
    emu = sub.add_parser(
        "emulator",
        help="serve a local Jet API emulator",
        description="Serve the Jet API contract over HTTP with real copies.",
    )
    from jetwatch.emulator import add_arguments

    add_arguments(emu)
    im_emu = sub.add_parser(
        "im-emulator",
        help="serve a local Actian Integration Manager API emulator",
        description="Serve the Integration Manager API (seed 003) over HTTP with real runs.",
    )
    from jetwatch.emulator import im as im_emulator

    im_emulator.add_arguments(im_emu)
    demo = sub.add_parser("demo", help="deliver sample files through the embedded emulator")
    demo.add_argument(
        "--keep", action="store_true", help="keep the daemon and emulator running afterwards"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    command: str = args.command
    if command in ("emulator", "im-emulator"):
        from jetwatch.emulator import im as im_emulator
        from jetwatch.emulator import serve

        try:
            return asyncio.run(serve(args) if command == "emulator" else im_emulator.serve(args))
        except ValueError as exc:
            print(f"jetwatch {command}: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    if command == "demo":
        from jetwatch.demo import run_demo

        return asyncio.run(run_demo(keep=args.keep))
    from jetwatch.config import config_path

    path = config_path(args.config)
    if command == "run":
        from jetwatch.daemon import run_daemon

        return asyncio.run(run_daemon(path))
    if command == "status":
        return _status(path, as_json=args.json)
    if command == "ledger":
        return _ledger(path, args.action)
    from jetwatch.commands import check_command, jobs_command

    if command == "check":
        return asyncio.run(check_command(path, online=args.online))
    return asyncio.run(jobs_command(path))


def _status(path: Path | None, *, as_json: bool) -> int:
    from jetwatch import status
    from jetwatch.commands import daemon_view, render_daemon
    from jetwatch.errors import LedgerError

    settings = _settings_or_none(path)
    if settings is None:
        return EXIT_CONFIG
    if not settings.ledger.path.exists():
        print(f"no ledger at {settings.ledger.path} yet: the daemon has not run", file=sys.stderr)
        return EXIT_FAIL
    try:
        snapshot = status.load_snapshot(settings.ledger.path, time.time())
    except LedgerError as exc:
        print(f"jetwatch status: {exc}", file=sys.stderr)
        return EXIT_LEDGER
    daemon = daemon_view(settings.http.listen)
    if as_json:
        data = status.to_json(snapshot)
        data["daemon"] = daemon
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(render_daemon(daemon))
        print(status.render_text(snapshot), end="")
    return EXIT_OK


def _ledger(path: Path | None, action: str) -> int:
    from jetwatch.commands import daemon_view
    from jetwatch.errors import LedgerError
    from jetwatch.ledger_sqlite import SqliteLedger

    settings = _settings_or_none(path)
    if settings is None:
        return EXIT_CONFIG
    ledger_path = settings.ledger.path
    if not ledger_path.exists():
        print(f"no ledger at {ledger_path}: nothing to do")
        return EXIT_OK
    if action == "move-aside":
        daemon = daemon_view(settings.http.listen)
        if daemon["reachable"]:
            # It would keep writing into the moved file and the next start would re-send.
            print(f"the daemon answers at {daemon['url']}: stop it first", file=sys.stderr)
            return EXIT_FAIL
        try:
            moved = SqliteLedger.move_aside(ledger_path, time.time())
        except (LedgerError, OSError) as exc:
            print(f"jetwatch ledger: {exc}", file=sys.stderr)
            return EXIT_FAIL
        print(f"moved {ledger_path} to {moved}; a new ledger starts on the next run")
        return EXIT_OK
    try:
        with SqliteLedger.open(ledger_path) as ledger:
            count = ledger.requeue_failed(time.time())
    except LedgerError as exc:
        print(f"jetwatch ledger: {exc}", file=sys.stderr)
        return EXIT_LEDGER
    print(f"{count} failed files queued again (a running daemon picks them up)")
    return EXIT_OK


def _settings_or_none(path: Path | None) -> Settings | None:
    """Settings for commands that only read the ledger: no secret needed, no folder required."""
    from jetwatch.commands import command_logging
    from jetwatch.config import load_settings
    from jetwatch.errors import ConfigError

    try:
        settings = load_settings(path, require_folders=False, require_credentials=False)
    except ConfigError as exc:
        print_problems(exc.problems)
        return None
    command_logging(settings)
    return settings


def print_problems(problems: list[tuple[str, str]]) -> None:
    for key, message in problems:
        print(f"config error: {key}: {message}", file=sys.stderr)
