"""The Actian Integration Manager API emulator (seed 003): real HTTP, real file work, faults."""

from __future__ import annotations

import argparse
from pathlib import Path

from jetwatch.emulators.common import number_arg, serve_until_signal, spec_arg
from jetwatch.emulators.im.app import ImEmulatorServer
from jetwatch.emulators.im.config import ImEmulatorConfig, UserSpec, default_users, parse_user

__all__ = [
    "ImEmulatorConfig",
    "ImEmulatorServer",
    "UserSpec",
    "add_arguments",
    "config_from_args",
    "parse_user",
    "serve",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``jetwatch im-emulator``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=number_arg(int, 0, "--port"), default=8080, help="0 picks a free port"
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
        type=number_arg(float, 0.001, "--token-ttl"),
        default=36000.0,
        metavar="SECONDS",
        help="lifetime of access tokens (default 36000, as in seed 003)",
    )
    parser.add_argument(
        "--run-step",
        type=number_arg(float, 0.0, "--run-step"),
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
        type=spec_arg(parse_user),
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
    return await serve_until_signal(
        ImEmulatorServer(config_from_args(args)), "im_emulator_stopping"
    )
