"""The Jet API emulator: real HTTP, real file copies, faults on request (`jetwatch emulator`)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import structlog

from jetwatch.emulator.app import EmulatorServer
from jetwatch.emulator.bootstrap import bootstrap_manual_job
from jetwatch.emulator.config import (
    ClientSpec,
    EmulatorConfig,
    Role,
    default_clients,
    parse_client,
)
from jetwatch.emulator.state import EmulatorStateError

__all__ = [
    "ClientSpec",
    "EmulatorConfig",
    "EmulatorServer",
    "EmulatorStateError",
    "Role",
    "add_arguments",
    "bootstrap_manual_job",
    "config_from_args",
    "parse_client",
    "serve",
]

log = structlog.get_logger(__name__)


def _client_arg(text: str) -> ClientSpec:
    try:
        return parse_client(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _number_arg(
    kind: type[int] | type[float], minimum: float, what: str
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
    """Options of ``jetwatch emulator``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=_number_arg(int, 0, "--port"), default=8080, help="0 picks a free port"
    )
    parser.add_argument(
        "--state-dir", type=Path, default=None, help="keep profiles, jobs, deliveries here"
    )
    parser.add_argument(
        "--token-ttl",
        type=_number_arg(float, 0.001, "--token-ttl"),
        default=3600.0,
        metavar="SECONDS",
        help="lifetime of OAuth tokens (default 3600)",
    )
    parser.add_argument(
        "--bandwidth",
        type=_number_arg(int, 0, "--bandwidth"),
        default=0,
        metavar="BYTES_PER_S",
        help="throughput limit per transfer; 0 = unlimited",
    )
    parser.add_argument(
        "--client",
        type=_client_arg,
        action="append",
        default=None,
        metavar="ID:SECRET[:ROLE]",
        help="accepted client (repeatable; default demo:demo-secret:S2S_ADMIN and "
        "viewer:viewer-secret:JET_VIEW_ONLY)",
    )


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The config the options describe; raise ValueError on a bad ``--client``."""
    clients = [c if isinstance(c, ClientSpec) else parse_client(str(c)) for c in args.client or []]
    if args.port > 65535:
        raise ValueError(f"--port must be at most 65535, got {args.port}")
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        state_dir=args.state_dir,
        token_ttl_s=float(args.token_ttl),
        bandwidth_bps=int(args.bandwidth),
        clients=clients or default_clients(),
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
        async with EmulatorServer(config):  # logs emulator_started with its URL
            await stop.wait()
            log.info("emulator_stopping")
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
    return 0
