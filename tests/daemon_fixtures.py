"""Fixtures for daemon, CLI and config tests: TOML files, ``jetwatch`` as a real process, sd_notify.

The daemon runs as ``python -m jetwatch run --config F`` with its JSON log in a file; the
test's event loop keeps serving the in-process emulator while it waits (asyncio
subprocesses, never a blocking ``wait``). NOTIFY_SOCKET is a real AF_UNIX datagram socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import pytest

from tests.emulator_fixtures import ADMIN_ID, ADMIN_SECRET, wait_for

FAST_JET: dict[str, Any] = {
    "poll_min_seconds": 0.2,
    "poll_max_seconds": 0.5,
    "job_recheck_seconds": 0.5,
    "max_retries": 1,
    "connect_timeout_seconds": 2.0,
}
FAST_FOLDER: dict[str, Any] = {
    "settle_seconds": 0.3,
    "batch_linger_seconds": 0.2,
    "max_wait_seconds": 0.5,
    "retry_backoff_seconds": 0.0,
}


# ---- TOML ------------------------------------------------------------------------------


def toml_value(value: Any) -> str:
    """A TOML literal for the simple values configs use."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def toml_text(config: Mapping[str, Any]) -> str:
    """``{"jet": {...}, "folders": [{...}]}`` as TOML: tables, then [[arrays of tables]]."""
    lines: list[str] = []
    for section, body in config.items():
        if isinstance(body, dict):
            lines += [f"[{section}]", *(f"{k} = {toml_value(v)}" for k, v in body.items())]
    for section, body in config.items():
        if isinstance(body, list):
            for item in body:
                lines += [f"[[{section}]]", *(f"{k} = {toml_value(v)}" for k, v in item.items())]
    return "\n".join(lines) + "\n"


def write_toml(path: Path, config: Mapping[str, Any]) -> Path:
    path.write_text(toml_text(config), encoding="utf-8")
    return path


def daemon_config(
    base_url: str,
    ledger: Path,
    folders: list[dict[str, Any]],
    *,
    secret: str = ADMIN_SECRET,
    jet: Mapping[str, Any] | None = None,
    level: str = "info",
    shutdown_s: float = 10.0,
) -> dict[str, Any]:
    """A whole config with fast timings and the ops server on a free port."""
    return {
        "jet": {
            "base_url": base_url,
            "client_id": ADMIN_ID,
            "client_secret": secret,
            **FAST_JET,
            **(jet or {}),
        },
        "ledger": {"path": str(ledger)},
        "http": {"listen": "127.0.0.1:0"},
        "log": {"level": level, "format": "json"},
        "daemon": {"shutdown_timeout_seconds": shutdown_s},
        "folders": [{**FAST_FOLDER, **f} for f in folders],
    }


def free_port() -> int:
    """A TCP port nothing listens on right now (for "the API is down" tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ---- processes -------------------------------------------------------------------------


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment without anything that would steer jetwatch, plus ``extra``."""
    drop = ("JETWATCH_", "NOTIFY_SOCKET", "WATCHDOG_", "CREDENTIALS_DIRECTORY")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(extra or {})
    return env


@dataclass(frozen=True, slots=True)
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


async def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout_s: float = 30.0
) -> CliResult:
    """``python -m jetwatch ARGS`` to completion, without blocking the test's event loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jetwatch",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(env),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


@dataclass
class DaemonProcess:
    """A ``jetwatch run`` child process; its JSON log lines are in ``log_path``."""

    config: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: asyncio.subprocess.Process | None = None
    started_at: float = 0.0

    async def start(self) -> DaemonProcess:
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "jetwatch",
                "run",
                "--config",
                str(self.config),
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=child_env(self.env),
            )
        self.started_at = time.monotonic()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def send(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), timeout_s)

    def text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """Every JSON log line so far (other lines, e.g. a traceback, are skipped)."""
        found = []
        for line in self.text().splitlines():
            with contextlib.suppress(ValueError):
                item = json.loads(line)
                if isinstance(item, dict):
                    found.append(item)
        return found

    async def wait_event(
        self, event: str, *, timeout_s: float = 20.0, after: int = 0
    ) -> dict[str, Any]:
        """The first log event named ``event`` (skipping the first ``after`` of them)."""

        async def probe() -> dict[str, Any] | None:
            matches = [e for e in self.events() if e.get("event") == event]
            if len(matches) > after:
                return matches[after]
            if not self.alive:
                raise AssertionError(f"daemon exited before {event!r}:\n{self.text()[-3000:]}")
            return None

        try:
            return await wait_for(probe, timeout_s=timeout_s, interval_s=0.05)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}: no {event!r} in the log:\n{self.text()[-3000:]}"
            ) from None

    async def ops_url(self) -> str:
        url: str = (await self.wait_event("ops_server_started"))["url"]
        return url


class SpawnDaemon(Protocol):
    async def __call__(
        self, config: Path, env: Mapping[str, str] | None = None
    ) -> DaemonProcess: ...


@pytest.fixture
async def spawn_daemon(tmp_path: Path) -> AsyncIterator[SpawnDaemon]:
    """Start ``jetwatch run`` processes; any still running at the end is killed."""
    procs: list[DaemonProcess] = []

    async def spawn(config: Path, env: Mapping[str, str] | None = None) -> DaemonProcess:
        log = tmp_path / f"daemon-{len(procs)}.log"
        proc = DaemonProcess(config, log, dict(env or {}))
        procs.append(proc)
        return await proc.start()

    yield spawn
    for proc in procs:
        if proc.alive and proc.proc is not None:
            proc.proc.kill()
            await proc.proc.wait()


# ---- sd_notify -------------------------------------------------------------------------


class NotifyListener:
    """The receiving end of $NOTIFY_SOCKET: a bound AF_UNIX datagram socket."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setblocking(False)
        self.received: list[tuple[float, str]] = []

    def drain(self) -> list[str]:
        """Every message so far, oldest first (each one may hold several lines)."""
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                break
            self.received.append((time.monotonic(), data.decode()))
        return [text for _, text in self.received]

    def lines(self) -> list[str]:
        return [line for message in self.drain() for line in message.splitlines()]

    async def wait_line(self, prefix: str, *, count: int = 1, timeout_s: float = 20.0) -> list[str]:
        """Wait until ``count`` lines starting with ``prefix`` arrived; returns them."""

        async def probe() -> list[str] | None:
            found = [line for line in self.lines() if line.startswith(prefix)]
            return found if len(found) >= count else None

        return await wait_for(probe, timeout_s=timeout_s, interval_s=0.02)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket() -> Iterator[NotifyListener]:
    """A NOTIFY_SOCKET in a short temp dir (AF_UNIX paths are limited to 108 bytes)."""
    folder = tempfile.mkdtemp(prefix="jw-notify-")
    listener = NotifyListener(os.path.join(folder, "notify.sock"))
    yield listener
    listener.close()
    shutil.rmtree(folder, ignore_errors=True)


# ---- HTTP ------------------------------------------------------------------------------


async def get_json(url: str) -> tuple[int, Any]:
    """``(status, JSON body)`` of one GET."""
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        return response.status, await response.json(content_type=None)


async def get_text(url: str) -> str:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        assert response.status == 200
        return await response.text()


def metric(text: str, name: str, **labels: str) -> float | None:
    """The sum of the samples of ``name`` whose labels include ``labels``; None when absent."""
    total: float | None = None
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        sample, value = line.rsplit(" ", 1)
        sample_name, _, rest = sample.partition("{")
        pairs = (part.split("=", 1) for part in rest.rstrip("}").split(",") if "=" in part)
        got = {k: v.strip('"') for k, v in pairs}
        if sample_name == name and all(got.get(k) == v for k, v in labels.items()):
            total = (total or 0.0) + float(value)
    return total


# ---- the emulator's side door ----------------------------------------------------------


async def received_paths(base_url: str) -> list[str]:
    """``relativePath`` of every object of every delivery the emulator accepted."""
    status, body = await get_json(f"{base_url}/_emulator/deliveries")
    assert status == 200
    return [o["relativePath"] for d in body["items"] for o in d["objects"]]


async def set_faults(base_url: str, **faults: Any) -> None:
    """``POST /_emulator/faults``; no arguments clears them."""
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(f"{base_url}/_emulator/faults", json=faults) as response,
    ):
        assert response.status == 200, await response.text()


async def wait_copied(src: Path, dst: Path, relpaths: list[str], timeout_s: float = 30.0) -> None:
    """Wait until every file is at the destination with the source's bytes."""

    def missing() -> list[str]:
        out = []
        for rel in relpaths:
            try:
                same = (dst / rel).read_bytes() == (src / rel).read_bytes()
            except OSError:
                same = False
            if not same:
                out.append(rel)
        return out

    async def probe() -> bool | None:
        return True if not await asyncio.to_thread(missing) else None

    try:
        await wait_for(probe, timeout_s=timeout_s, interval_s=0.1)
    except AssertionError:
        raise AssertionError(f"never arrived: {missing()[:10]}") from None


# ---- files and secrets -----------------------------------------------------------------

BEARER_IN_CLEAR = re.compile(r"Bearer\s+(?!\*\*\*)[^\s\"',;)}\]]+")


def assert_no_secrets(text: str, *secrets: str) -> None:
    """None of ``secrets`` and no bearer token in clear (``Bearer ***`` is fine) in ``text``."""
    for secret in secrets:
        assert secret not in text
    found = BEARER_IN_CLEAR.search(text)
    assert found is None, found


def drop(src: Path, names: list[str], size: int = 1000) -> None:
    """Write random files (relative paths may hold folders)."""
    for name in names:
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
