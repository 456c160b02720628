"""`jetwatch emulator` glue: options, client parsing, serve until a signal, bootstrap."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
from pathlib import Path

import aiohttp
import pytest

from jetwatch.emulators.jet import (
    Assumptions,
    ClientSpec,
    EmulatorServer,
    PausedBacklog,
    Role,
    add_arguments,
    bootstrap_manual_job,
    config_from_args,
    parse_client,
    serve,
)
from jetwatch.errors import AuthError
from tests.fixtures.emulator import wait_for


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jetwatch emulator")
    add_arguments(parser)
    return parser


def test_defaults_match_the_contract() -> None:
    """No options: 127.0.0.1:8080, one-hour tokens, no bandwidth limit, demo and viewer."""
    config = config_from_args(_parser().parse_args([]))
    assert (config.host, config.port, config.state_dir) == ("127.0.0.1", 8080, None)
    assert (config.token_ttl_s, config.bandwidth_bps) == (3600.0, 0)
    assert config.clients == [
        ClientSpec("demo", "demo-secret", Role.S2S_ADMIN),
        ClientSpec("viewer", "viewer-secret", Role.JET_VIEW_ONLY),
    ]
    # The known API and nothing more, unless a flag says otherwise.
    assert config.assume == Assumptions()
    assert config.assume.enabled() == []
    assert config.paused_backlog is PausedBacklog.FAIL


def test_assumptions_are_flags_labelled_in_help() -> None:
    """Each convenience beyond the known API is its own flag, labelled an assumption."""
    text = " ".join(_parser().format_help().split())
    for flag in ("--assume-job-deliveries", "--assume-delivery-objects", "--assume-job-files"):
        assert f"{flag} ASSUMPTION:" in text
    assert "--paused-backlog {fail,stall} ASSUMPTION" in text
    argv = ["--assume-job-deliveries", "--assume-job-files", "--paused-backlog", "stall"]
    config = config_from_args(_parser().parse_args(argv))
    assert config.assume.enabled() == ["job_deliveries", "job_files"]
    assert config.paused_backlog is PausedBacklog.STALL


def test_options_are_parsed() -> None:
    """Every option reaches the config; --client repeats and replaces the defaults."""
    argv = "--host 0.0.0.0 --port 0 --state-dir st --token-ttl 2.5 --bandwidth 1000"
    args = _parser().parse_args(
        [*argv.split(), "--client", "a:s1", "--client", "b:s2:jet_view_only"]
    )
    config = config_from_args(args)
    assert (config.host, config.port, config.state_dir) == ("0.0.0.0", 0, Path("st"))
    assert (config.token_ttl_s, config.bandwidth_bps) == (2.5, 1000)
    assert config.clients == [ClientSpec("a", "s1"), ClientSpec("b", "s2", Role.JET_VIEW_ONLY)]


@pytest.mark.parametrize(
    "argv",
    [
        ["--client", "only-an-id"],
        ["--client", "id:topsecret:KING"],
        ["--client", ":topsecret"],
        ["--port", "http"],
        ["--bandwidth", "-5"],
        ["--token-ttl", "0"],
    ],
)
def test_bad_options_exit_2_with_a_message(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad values stop argparse with exit code 2 and a message that hides the secret."""
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert argv[0] in err
    assert "topsecret" not in err


def test_parse_client_raises_value_error() -> None:
    """parse_client and config_from_args refuse bad ID:SECRET[:ROLE] with ValueError."""
    assert parse_client("x:y:S2S_ADMIN") == ClientSpec("x", "y", Role.S2S_ADMIN)
    with pytest.raises(ValueError, match="ID:SECRET"):
        parse_client("x")
    args = _parser().parse_args([])
    args.client = ["bad"]
    with pytest.raises(ValueError, match="ID:SECRET"):
        config_from_args(args)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_serve_runs_until_sigterm(tmp_path: Path) -> None:
    """serve() answers HTTP until SIGTERM, then stops, writes its state and returns 0."""
    port = _free_port()
    args = _parser().parse_args(["--port", str(port), "--state-dir", str(tmp_path / "st")])
    task = asyncio.create_task(serve(args))
    async with aiohttp.ClientSession() as http:

        async def answering() -> bool | None:
            try:
                async with http.get(f"http://127.0.0.1:{port}/_emulator/stats") as response:
                    return True if response.status == 200 else None
            except aiohttp.ClientConnectionError:
                assert not task.done(), task
                return None

        await wait_for(answering)
        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(task, timeout=10) == 0
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(f"http://127.0.0.1:{port}/_emulator/stats")
    assert (tmp_path / "st" / "emulator-state.json").exists()


async def test_bootstrap_with_wrong_secret_raises_auth_error(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    """bootstrap_manual_job translates a refused token into AuthError."""
    with pytest.raises(AuthError):
        await bootstrap_manual_job(emulator.url, "demo", "nope", tmp_path, tmp_path)
