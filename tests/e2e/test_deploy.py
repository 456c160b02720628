"""Tests for the deployment files: systemd unit, Dockerfile, .dockerignore, compose, edge notes."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jetwatch.config.settings import DaemonSettings
from jetwatch.ops.health import LoopMonitor, Readiness
from jetwatch.ops.server import OpsServer
from tests.fixtures.host import compose_command, need_tool, unavailable

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "jetwatch.service"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
MAX_EXPOSURE = 2.0


# ---- systemd unit -------------------------------------------------------------------------


def _unit_settings() -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit, repeated keys kept in order."""
    settings: dict[str, list[str]] = {}
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key, []).append(value)
    return settings


def _unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointed at an executable that exists on this machine."""
    script = Path(sys.executable).parent / "jetwatch"
    exe = str(script) if script.exists() else shutil.which("true") or "/bin/true"
    text = UNIT.read_text(encoding="utf-8")
    text, count = re.subn(r"^ExecStart=\S+", f"ExecStart={exe}", text, flags=re.MULTILINE)
    assert count == 1
    copy = tmp_path / "jetwatch.service"
    copy.write_text(text, encoding="utf-8")
    return copy


def test_unit_contract() -> None:
    """The unit is Type=notify with watchdog, reload, restart and a stop timeout above ours."""
    unit = _unit_settings()
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "ExecStart": "/usr/local/bin/jetwatch run --config /etc/jetwatch/config.toml",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "WatchdogSec": "30",
        "Restart": "on-failure",
        "RestartSec": "5",
        "User": "jetwatch",
        "Group": "jetwatch",
        "StateDirectory": "jetwatch",
        "LoadCredential": "client_secret:/etc/jetwatch/client_secret",
        "UMask": "0027",
    }
    assert {key: unit[key][-1] for key in expected} == expected
    assert "DynamicUser" not in unit
    shutdown_s = DaemonSettings.model_fields["shutdown_timeout_seconds"].default
    assert float(unit["TimeoutStopSec"][-1]) > shutdown_s


def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    """systemd-analyze verify reports nothing about the unit."""
    analyze = need_tool("systemd-analyze")  # CI installs it (.ci/run): a failure there
    copy = _unit_copy(tmp_path)
    proc = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    output = (proc.stdout + proc.stderr).strip()
    # Only lines about our unit count: a host may have unrelated broken units.
    ours = [line for line in output.splitlines() if "jetwatch" in line]
    assert proc.returncode == 0, output
    assert ours == []


def test_unit_exposure_level(tmp_path: Path) -> None:
    """systemd-analyze security --offline rates the sandbox at an exposure of 2.0 or less."""
    analyze = need_tool("systemd-analyze")
    copy = _unit_copy(tmp_path)
    proc = subprocess.run(
        [analyze, "security", "--offline=yes", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "--offline" in proc.stderr and "unrecognized" in proc.stderr:
        unavailable("this systemd-analyze has no --offline (needs systemd 250+)")
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout)
    assert match is not None, proc.stdout + proc.stderr
    assert float(match[1]) <= MAX_EXPOSURE


# ---- Dockerfile ---------------------------------------------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current = f"{current} {line}" if current else line
        if current.endswith("\\"):
            current = current[:-1].rstrip()
            continue
        word, _, args = current.partition(" ")
        out.append((word.upper(), args.strip()))
        current = ""
    return out


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions(DOCKERFILE.read_text(encoding="utf-8"))
    starts = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    assert len(starts) >= 2, "expected a multi-stage build"
    return instructions[starts[-1] :]


def _one(stage: list[tuple[str, str]], word: str) -> str:
    values = [args for w, args in stage if w == word]
    assert len(values) == 1, f"expected one {word} in the final stage, found {values}"
    return values[0]


def test_dockerfile_final_stage() -> None:
    """Slim Python base, non-root user before ENTRYPOINT, the ledger volume, the ops port."""
    stage = _final_stage()
    assert re.fullmatch(r"python:3\.\d+-slim", stage[0][1].split()[0])
    words = [w for w, _ in stage]
    user = _one(stage, "USER").split(":")[0]
    assert user not in {"root", "0"}
    assert words.index("USER") < words.index("ENTRYPOINT")
    assert json.loads(_one(stage, "ENTRYPOINT")) == ["jetwatch"]
    assert json.loads(_one(stage, "CMD")) == ["run", "--config", "/etc/jetwatch/config.toml"]
    assert "/var/lib/jetwatch" in json.loads(_one(stage, "VOLUME"))
    assert _one(stage, "EXPOSE") == "9108"
    env = " ".join(args for w, args in stage if w == "ENV")
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"):
        assert setting in env
    assert "JETWATCH_HTTP__LISTEN=0.0.0.0:9108" in env


def _healthcheck_argv() -> list[str]:
    check = _one(_final_stage(), "HEALTHCHECK")
    assert "curl" not in check
    assert "wget" not in check
    argv = json.loads(check.split(" CMD ", 1)[1])
    assert isinstance(argv, list)
    assert argv[:2] == ["python", "-c"]
    assert "http://127.0.0.1:9108/healthz" in argv[2]
    return [str(a) for a in argv]


async def _run_healthcheck(url: str) -> int:
    code = _healthcheck_argv()[2].replace("http://127.0.0.1:9108", url)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
    return await asyncio.wait_for(proc.wait(), 30)


@pytest.mark.parametrize(("max_lag_s", "expected_ok"), [(5.0, True), (0.0, False)])
async def test_dockerfile_healthcheck_probes_healthz(max_lag_s: float, expected_ok: bool) -> None:
    """The HEALTHCHECK command exits 0 against a healthy /healthz and non-zero on a 503."""
    ops = OpsServer(
        "127.0.0.1:0",
        readiness=lambda: Readiness(True),
        status=dict,
        loop_monitor=LoopMonitor(),
        max_lag_s=max_lag_s,
    )
    async with ops:
        assert ops.url is not None
        returncode = await _run_healthcheck(ops.url)
    assert (returncode == 0) is expected_ok


def test_dockerignore_keeps_the_context_small() -> None:
    """The build context leaves out the venv, git and caches but keeps what the build needs."""
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".pytest_cache", "**/__pycache__"} <= patterns
    assert not patterns & {"pyproject.toml", "README.md", "jetwatch", "*"}


def _docker_works(*args: str) -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        proc = subprocess.run(["docker", *args], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def test_docker_build_check() -> None:
    """docker build --check finds no problem in the Dockerfile (needs buildx and an engine)."""
    if not (_docker_works("buildx", "version") and _docker_works("info")):
        pytest.skip("docker build --check needs buildx and a reachable Docker engine")
    proc = subprocess.run(
        ["docker", "build", "--check", str(ROOT)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---- docker compose -----------------------------------------------------------------------


def test_compose_file_text() -> None:
    """Without a YAML parser: the compose file has the pieces operators rely on."""
    text = COMPOSE.read_text(encoding="utf-8")
    assert "\t" not in text
    for fragment in (
        "./config.toml:/etc/jetwatch/config.toml:ro",
        "ledger:/var/lib/jetwatch",
        '"127.0.0.1:9108:9108"',
        "JETWATCH_JET__CLIENT_SECRET_FILE: /run/secrets/jet_client_secret",
        'profiles: ["try"]',
        'command: ["emulator", "--host", "0.0.0.0", "--port", "8080"]',
    ):
        assert fragment in text


def test_compose_config(tmp_path: Path) -> None:
    """docker compose config accepts the file and resolves both services of profile "try"."""
    command = compose_command()
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    shutil.copy(COMPOSE, deploy / COMPOSE.name)
    shutil.copy(DOCKERFILE, tmp_path / "Dockerfile")
    (deploy / "config.toml").write_text("", encoding="utf-8")
    (deploy / "jet_client_secret").write_text("x", encoding="utf-8")
    (deploy / "ingest").mkdir()
    compose = [*command, "-f", str(deploy / COMPOSE.name), "--profile", "try"]
    proc = subprocess.run(
        [*compose, "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    services = json.loads(proc.stdout)["services"]
    assert set(services) == {"jetwatch", "emulator"}
    assert services["emulator"]["command"][:1] == ["emulator"]
    published = services["jetwatch"]["ports"][0]
    assert (published["host_ip"], str(published["published"])) == ("127.0.0.1", "9108")


# ---- edge notes ---------------------------------------------------------------------------


def test_edge_notes_cover_the_topics() -> None:
    """The edge notes give the sysctl lines and the bench command, and leave no TODO."""
    text = (ROOT / "deploy" / "edge.md").read_text(encoding="utf-8")
    for needle in (
        "fs.inotify.max_user_watches",
        "fs.inotify.max_queued_events",
        "make bench",
        "scan_interval_seconds",
        "journald",
        "timesyncd",
        "Disk full",
    ):
        assert needle in text
    assert "TODO" not in text
