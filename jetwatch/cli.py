"""Command line: ``jetwatch run | check | status | jobs | ledger | emulator | im-emulator | demo``.

Exit codes are :class:`jetwatch.errors.ExitCode`: 0 ok, 1 runtime failure (also: a job is
paused, the daemon was forced to stop by a second signal or overran its shutdown deadline),
2 bad usage or configuration (one line per problem, naming the key), 3 ledger refused
(corrupt or not a ledger; see ``ledger move-aside``). Each command's work is in ``app/``.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from jetwatch import __version__
from jetwatch.errors import ExitCode


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
    st.add_argument(
        "--watch", action="store_true", help="redraw the report live until Ctrl+C (a terminal)"
    )
    st.add_argument(
        "--interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="seconds between two reports with --watch (default 2)",
    )
    with_config("jobs", "list the jobs the credentials can see")
    ledger = with_config("ledger", "ledger maintenance")
    ledger.add_argument(
        "action",
        choices=["move-aside", "retry-failed", "copy"],
        help="move-aside: rename a refused ledger so a new one starts "
        "(everything not recorded elsewhere may be sent again); "
        "retry-failed: queue FAILED files for delivery again; "
        "copy: move the SQLite ledger's memory into PostgreSQL (--to)",
    )
    ledger.add_argument(
        "--to", default="", help="copy: the PostgreSQL ledger, postgresql://user@host:5432/db"
    )
    ledger.add_argument(
        "--password-file",
        type=Path,
        default=None,
        help="copy: file holding the PostgreSQL password (else $PGPASSWORD or ~/.pgpass)",
    )
    ledger.add_argument(
        "--force", action="store_true", help="move-aside even a ledger that opens fine"
    )
    emu = sub.add_parser(
        "emulator",
        help="serve a local Jet API emulator",
        description="Serve the Jet API contract over HTTP with real copies.",
    )
    from jetwatch.emulators.jet import add_arguments

    add_arguments(emu)
    im_emu = sub.add_parser(
        "im-emulator",
        help="serve a local Actian Integration Manager API emulator",
        description="Serve the Integration Manager API (seed 003) over HTTP with real runs.",
    )
    from jetwatch.emulators import im as im_emulator

    im_emulator.add_arguments(im_emu)
    demo = sub.add_parser("demo", help="deliver sample files through the embedded emulator")
    demo.add_argument(
        "--keep", action="store_true", help="keep the daemon and emulator running afterwards"
    )
    return parser


TRACEBACK_ENV = "JETWATCH_TRACEBACK"  # "1": let an unexpected error show its traceback


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return _reader_went_away()
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            return _reader_went_away()
        return _unexpected(exc)
    except Exception as exc:  # no traceback for people; one line, and how to see more
        return _unexpected(exc)


def _reader_went_away() -> int:
    """``jetwatch status | head -1``: the reader left; say nothing more, as other tools do."""
    # Python flushes stdout again at exit and would complain about the closed pipe.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return ExitCode.FAILURE


def _unexpected(exc: Exception) -> int:
    if os.environ.get(TRACEBACK_ENV) == "1":
        raise exc
    print(
        f"jetwatch: unexpected error ({type(exc).__name__}: {exc}); this is a bug - "
        f"run again with {TRACEBACK_ENV}=1 to see where, and report it",
        file=sys.stderr,
    )
    return ExitCode.FAILURE


def _dispatch(args: argparse.Namespace) -> int:
    command: str = args.command
    if command in ("emulator", "im-emulator"):
        from jetwatch.emulators import im as im_emulator
        from jetwatch.emulators.jet import serve

        try:
            return asyncio.run(serve(args) if command == "emulator" else im_emulator.serve(args))
        except ValueError as exc:
            print(f"jetwatch {command}: {exc}", file=sys.stderr)
            return ExitCode.CONFIG
    if command == "demo":
        from jetwatch.app.demo import run_demo

        return asyncio.run(run_demo(keep=args.keep))
    from jetwatch.config.load import config_path

    path = config_path(args.config)
    if command == "run":
        from jetwatch.app.daemon import run_daemon

        return asyncio.run(run_daemon(path))
    if command in ("status", "ledger"):
        from jetwatch.app.ledger_commands import ledger_command, status_command

        if command == "status":
            if args.watch and (args.json or args.interval <= 0):
                print(
                    "jetwatch status: --watch needs a positive --interval, not --json",
                    file=sys.stderr,
                )
                return ExitCode.CONFIG
            watch_s = args.interval if args.watch else None
            return asyncio.run(status_command(path, as_json=args.json, watch_s=watch_s))
        return asyncio.run(
            ledger_command(
                path, args.action, force=args.force, to=args.to, password_file=args.password_file
            )
        )
    from jetwatch.app.commands import check_command, jobs_command

    if command == "check":
        return asyncio.run(check_command(path, online=args.online))
    return asyncio.run(jobs_command(path))
