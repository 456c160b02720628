"""The Jet API emulator: real HTTP, real file copies, faults on request (`jetwatch emulator`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from jetwatch.emulators.common import number_arg, serve_until_signal, spec_arg
from jetwatch.emulators.jet.app import EmulatorServer
from jetwatch.emulators.jet.bootstrap import bootstrap_manual_job
from jetwatch.emulators.jet.config import (
    Assumptions,
    ClientSpec,
    EmulatorConfig,
    PausedBacklog,
    Role,
    default_clients,
    parse_client,
)
from jetwatch.emulators.jet.state import EmulatorStateError

__all__ = [
    "Assumptions",
    "ClientSpec",
    "EmulatorConfig",
    "EmulatorServer",
    "EmulatorStateError",
    "PausedBacklog",
    "Role",
    "add_arguments",
    "bootstrap_manual_job",
    "config_from_args",
    "parse_client",
    "serve",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``jetwatch emulator``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=number_arg(int, 0, "--port"), default=8080, help="0 picks a free port"
    )
    parser.add_argument(
        "--state-dir", type=Path, default=None, help="keep profiles, jobs, deliveries here"
    )
    parser.add_argument(
        "--token-ttl",
        type=number_arg(float, 0.001, "--token-ttl"),
        default=3600.0,
        metavar="SECONDS",
        help="lifetime of OAuth tokens (default 3600)",
    )
    parser.add_argument(
        "--bandwidth",
        type=number_arg(int, 0, "--bandwidth"),
        default=0,
        metavar="BYTES_PER_S",
        help="throughput limit per transfer; 0 = unlimited",
    )
    parser.add_argument(
        "--client",
        type=spec_arg(parse_client),
        action="append",
        default=None,
        metavar="ID:SECRET[:ROLE]",
        help="accepted client (repeatable; default demo:demo-secret:S2S_ADMIN and "
        "viewer:viewer-secret:JET_VIEW_ONLY)",
    )
    parser.add_argument(
        "--paused-backlog",
        choices=[m.value for m in PausedBacklog],
        default=PausedBacklog.FAIL.value,
        help="ASSUMPTION (Jet does not document it): what a delivery in flight shows after "
        "its job was paused with clearBacklogOnPause: 'fail' = it ends FAILED, 'stall' = it "
        "never moves again (default fail)",
    )
    parser.add_argument("--tls-cert", type=Path, default=None, help="serve HTTPS: PEM chain")
    parser.add_argument("--tls-key", type=Path, default=None, help="private key of --tls-cert")
    extras = parser.add_argument_group(
        "assumptions beyond the known Jet API (off by default; for tests of optional paths)"
    )
    extras.add_argument(
        "--assume-job-deliveries",
        action="store_true",
        help="ASSUMPTION: GET /v1/jobs[/{id}] lists each job's delivery ids (seed 002 says "
        "so; no real answer shows it)",
    )
    extras.add_argument(
        "--assume-delivery-objects",
        action="store_true",
        help="ASSUMPTION: GET /v1/jobs/{id}/deliveries/{id} shows the objects as posted "
        "(seed 002's answer has none)",
    )
    extras.add_argument(
        "--assume-job-files",
        action="store_true",
        help="ASSUMPTION: GET /v1/jobs/{id}/files lists per-file records (a Swagger copy "
        "shows the shape; the path is unconfirmed)",
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
        assume=Assumptions(
            job_deliveries=bool(args.assume_job_deliveries),
            delivery_objects=bool(args.assume_delivery_objects),
            job_files=bool(args.assume_job_files),
        ),
        paused_backlog=PausedBacklog(args.paused_backlog),
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )


async def serve(args: argparse.Namespace) -> int:
    """Run the emulator until SIGINT or SIGTERM; return the exit code."""
    return await serve_until_signal(EmulatorServer(config_from_args(args)), "emulator_stopping")
