"""The Actian Integration Manager API emulator (seed 003): real HTTP, real file work, faults."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import structlog

from jetwatch.emulator.im.app import ImEmulatorServer
from jetwatch.emulator.im.config import ImEmulatorConfig, UserSpec, default_users, parse_user

__all__ = [
    "ImEmulatorConfig",
    "ImEmulatorServer",
    "UserSpec",
    "add_arguments",
    "config_from_args",
    "parse_user",
    "serve",
]

log = structlog.get_logger(__name__)


def _user_arg(text: str) -> UserSpec:
    try:
        return parse_user(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(
    kind: type[int] | type[float], what: str, minimum: float
) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{what} must be at least {minimum}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``jetwatch im-emulator``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=_positive(int, "--port", 0), default=8080, help="0 picks a free port"
    )
    parser.add_argument("--output-dir", type=Path, default=None, help="runs copy their files here")
    parser.add_argument(
        "--source-root",
        type=Path,
        default=None,
        help="files under it keep their relative path in --output-dir",
    )
    parser.add_argument(
        "--token-ttl",
        type=_positive(float, "--token-ttl", 0.001),
        default=36000.0,
        metavar="SECONDS",
        help="lifetime of access tokens (default 36000, as in seed 003)",
    )
    parser.add_argument(
        "--run-step",
        type=_positive(float, "--run-step", 0.0),
        default=0.05,
        metavar="SECONDS",
        help="time a run spends QUEUED, then RUNNING, before its work (default 0.05)",
    )
    parser.add_argument(
        "--files-variable",
        default="JETWATCH_FILES",
        help="job variable naming the files of a run (default JETWATCH_FILES)",
    )
    parser.add_argument(
        "--user",
        type=_user_arg,
        action="append",
        default=None,
        metavar="USERNAME:PASSWORD",
        help="accepted user (repeatable; default admin:admin-secret)",
    )


def config_from_args(args: argparse.Namespace) -> ImEmulatorConfig:
    """The config the options describe; raise ValueError on a bad value."""
    users = [u if isinstance(u, UserSpec) else parse_user(str(u)) for u in args.user or []]
    if args.port > 65535:
        raise ValueError(f"--port must be at most 65535, got {args.port}")
    return ImEmulatorConfig(
        host=args.host,
        port=args.port,
        output_dir=args.output_dir,
        source_root=args.source_root,
        token_ttl_s=float(args.token_ttl),
        run_step_s=float(args.run_step),
        files_variable=args.files_variable,
        users=users or default_users(),
    )


async def serve(args: argparse.Namespace) -> int:
    """Run the emulator until SIGINT or SIGTERM; return the exit code."""
    config = config_from_args(args)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    # Handlers go in before the server starts, so a signal never finds the default action.
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        async with ImEmulatorServer(config):  # logs im_emulator_started with its URL
            await stop.wait()
            log.info("im_emulator_stopping")
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
    return 0
