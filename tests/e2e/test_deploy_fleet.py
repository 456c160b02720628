"""The fleet's deployment files: the compose profile, its config example, the notes."""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path

from tests.fixtures.host import compose_command

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "docker-compose.yml"


def test_compose_fleet_profile_text() -> None:
    """PostgreSQL and two daemons on one shared folder, the password as a secret."""
    text = COMPOSE.read_text(encoding="utf-8")
    for fragment in (
        'profiles: ["fleet"]',
        "image: postgres:15",
        "jetwatch-a:",
        "jetwatch-b:",
        "./fleet-ingest:/srv/ingest",
        "JETWATCH_LEDGER__PASSWORD_FILE: /run/secrets/ledger_password",
        "POSTGRES_PASSWORD_FILE: /run/secrets/ledger_password",
    ):
        assert fragment in text
    assert text.count("./fleet-ingest:/srv/ingest") == 1  # one anchor, shared by both


def test_fleet_config_example_loads() -> None:
    """The fleet example names a PostgreSQL ledger and no SQLite path."""
    data = tomllib.loads((ROOT / "deploy" / "config.fleet.example.toml").read_text())
    assert data["ledger"]["url"].startswith("postgresql://")
    assert "path" not in data["ledger"]


def test_fleet_notes_cover_the_topics() -> None:
    text = (ROOT / "deploy" / "fleet.md").read_text(encoding="utf-8")
    for needle in ("LoadCredential=ledger_password", "lease_seconds", "ledger copy",
                   "same folder names", "PgBouncer", "--profile fleet"):  # fmt: skip
        assert needle in text


def test_compose_fleet_config_resolves(tmp_path: Path) -> None:
    """docker compose config accepts the fleet profile: postgres and two daemons."""
    command = compose_command()
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    shutil.copy(COMPOSE, deploy / COMPOSE.name)
    shutil.copy(ROOT / "Dockerfile", tmp_path / "Dockerfile")
    for name in ("config.toml", "config.fleet.toml", "jet_client_secret", "ledger_password"):
        (deploy / name).write_text("x", encoding="utf-8")
    compose = [*command, "-f", str(deploy / COMPOSE.name), "--profile", "fleet"]
    proc = subprocess.run([*compose, "config", "--format", "json"], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    services = json.loads(proc.stdout)["services"]
    assert {"postgres", "jetwatch-a", "jetwatch-b"} <= set(services)
