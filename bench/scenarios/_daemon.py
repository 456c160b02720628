"""The daemon under test as a subprocess (config, parsed JSON log, CPU, RSS), and peers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.scenarios._harness import CLIENT_ID, CLIENT_SECRET, REPO, say, wait_until

CLK_TCK = os.sysconf("SC_CLK_TCK")


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def write_config(
    path: Path,
    *,
    base_url: str,
    folder: Path,
    ledger: Path,
    job: str,
    log_level: str = "info",
    ledger_keys: dict[str, object] | None = None,
    **folder_opts: object,
) -> Path:
    """A daemon config: one folder named "bench", JSON logs, ops on a free port.

    Everything else is jetwatch's default (rate limit, poll intervals, linger, max_files)
    except what the scenario passes, and settle 1 s. ``ledger_keys`` replaces the
    ``[ledger]`` section (``{"path": ledger}`` by default): another ledger backend.
    """
    folders = [{"name": "bench", "path": folder, "job": job, **folder_opts}]
    return write_config_multi(
        path,
        base_url=base_url,
        folders=folders,
        ledger_keys=ledger_keys or {"path": ledger},
        log_level=log_level,
    )


def write_config_multi(
    path: Path,
    *,
    base_url: str,
    folders: list[dict[str, object]],
    ledger_keys: dict[str, object],
    log_level: str = "info",
) -> Path:
    """A daemon config with several ``[[folders]]`` (each settle 1 s unless given)."""
    lines = [
        "[jet]",
        f"base_url = {toml_value(base_url)}",
        f"client_id = {toml_value(CLIENT_ID)}",
        f"client_secret = {toml_value(CLIENT_SECRET)}",
        "[ledger]",
        *(f"{key} = {toml_value(value)}" for key, value in ledger_keys.items()),
        "[http]",
        'listen = "127.0.0.1:0"',
        "[log]",
        f"level = {toml_value(log_level)}",
        'format = "json"',
    ]
    for folder in folders:
        opts = {"settle_seconds": 1.0, **folder}
        lines.append("[[folders]]")
        lines += [f"{key} = {toml_value(value)}" for key, value in opts.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process so far, every thread included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def event_time(event: dict[str, Any]) -> float:
    """Epoch seconds of a structlog JSON event (its ISO ``timestamp``)."""
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


class DaemonProcess:
    """``python -m jetwatch run`` (or the profiling launcher) with its JSON log parsed live."""

    def __init__(
        self,
        config: Path,
        *,
        profile_out: Path | None = None,
        tracemalloc: bool = False,
        log_path: Path | None = None,
    ) -> None:
        self.config = config
        self.log_path = log_path
        self.profile_out = profile_out
        self.tracemalloc = tracemalloc
        self.events: list[dict[str, Any]] = []
        self.other_lines: deque[str] = deque(maxlen=40)
        self.started_at = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self) -> None:
        cmd = [sys.executable, "-m", "jetwatch", "run", "--config", str(self.config)]
        if self.profile_out is not None:
            cmd = [sys.executable, "-m", "bench.scenarios._profiled", "--config", str(self.config)]
            cmd += ["--out", str(self.profile_out)]
            cmd += ["--tracemalloc"] if self.tracemalloc else []
        env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
        self.started_at = time.time()
        self._proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stderr is not None
        for raw in self._proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            try:
                event = json.loads(line)
            except ValueError:
                self.other_lines.append(line)
                continue
            if isinstance(event, dict):
                self.events.append(event)  # list.append is atomic under the GIL

    def find(self, name: str, since: int = 0, **match: object) -> dict[str, Any] | None:
        for event in self.events[since:]:
            if event.get("event") == name and all(event.get(k) == v for k, v in match.items()):
                return event
        return None

    def all(self, name: str, since: int = 0) -> list[dict[str, Any]]:
        return [e for e in self.events[since:] if e.get("event") == name]

    async def wait_event(
        self, name: str, timeout_s: float, since: int = 0, **match: object
    ) -> dict[str, Any] | None:
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            event = self.find(name, since, **match)
            if event is not None:
                found.append(event)
            return bool(found) or not self.alive()

        await wait_until(seen, timeout_s, 0.05)
        return found[0] if found else None

    def ops_url(self) -> str | None:
        """The ops server's base URL, from its ``ops_server_started`` event."""
        event = self.find("ops_server_started")
        return None if event is None else str(event["url"])

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def cpu_s(self) -> float:
        """User + system CPU seconds of the daemon so far, every thread included."""
        return cpu_of(self.pid)

    def memory_mb(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) in MB: resident now and the peak so far."""
        values = {"VmRSS": 0.0, "VmHWM": 0.0}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in values:
                values[key] = int(rest.split()[0]) / 1024
        return values["VmRSS"], values["VmHWM"]

    def tail(self) -> str:
        return "\n".join(self.other_lines)

    async def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM, wait up to ``timeout_s``, then SIGKILL; returns the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            if not await wait_until(lambda: proc.poll() is not None, timeout_s, 0.05):
                proc.kill()
                say("daemon did not stop after SIGTERM: killed")
        code = await asyncio.to_thread(proc.wait)
        if self._reader is not None:
            await asyncio.to_thread(self._reader.join, 5.0)
        if code not in (0, -signal.SIGKILL):
            say(f"daemon exited with {code}; last non-JSON lines:\n{self.tail()}")
        if self.log_path is not None:
            lines = (json.dumps(event) + "\n" for event in self.events)
            self.log_path.write_text("".join(lines), encoding="utf-8")
        return code


class ChildProcess:
    """A peer process speaking JSON lines on stdout (``ready`` first, a summary last)."""

    def __init__(self, cmd: list[str]) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.lines: list[dict[str, Any]] = []
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with contextlib.suppress(ValueError):
                data = json.loads(raw)
                if isinstance(data, dict):
                    self.lines.append(data)

    def has(self, kind: str) -> bool:
        return any(line.get("kind") == kind for line in self.lines)

    def last(self, kind: str) -> dict[str, Any] | None:
        found = [line for line in self.lines if line.get("kind") == kind]
        return found[-1] if found else None

    async def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if not await wait_until(lambda: self.proc.poll() is not None, timeout_s, 0.05):
                self.proc.kill()
        await asyncio.to_thread(self.proc.wait)
        await asyncio.to_thread(self._reader.join, 5.0)
