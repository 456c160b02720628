"""The fleet seen by operators (status, /status, metrics), bad ledger input, ``ledger copy``."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import psycopg
import pytest

from jetwatch.emulators.jet import EmulatorServer
from jetwatch.errors import ExitCode
from jetwatch.ledger.postgres.schema import SCHEMA_VERSION
from tests.fixtures.daemon import (
    SpawnDaemon,
    daemon_config,
    drop,
    get_json,
    get_text,
    metric,
    run_cli,
    wait_copied,
    write_toml,
)
from tests.fixtures.emulator import wait_for
from tests.fixtures.fleet import fleet_configs, wait_owner
from tests.fixtures.pipeline import duplicates, received
from tests.fixtures.postgres import PASSWORD, PgCluster

pytestmark = pytest.mark.slow

Job = tuple[EmulatorServer, str, Path, Path]


def plain_url(cluster: PgCluster) -> str:
    return cluster.url(cluster.new_database().rsplit("/", 1)[1], password=False)


def one_line(text: str) -> bool:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return len(lines) == 1 and "Traceback" not in text


async def test_status_shows_every_daemon_and_each_folders_owner(
    emulator_job: Job, tmp_path: Path, spawn_daemon: SpawnDaemon, pg_cluster: PgCluster
) -> None:
    """``status``, ``status --json``, ``/status`` and the metrics show the fleet in one view."""
    server, job_id, src, _ = emulator_job
    url = plain_url(pg_cluster)
    configs = fleet_configs(
        tmp_path, 2, base_url=server.url, job_id=job_id, src=src, ledger_urls=[url] * 2
    )
    daemons = [await spawn_daemon(c) for c in configs]
    owner = await wait_owner(url)
    standby = next(d for d in daemons if d.pid != owner)
    standby_url = await standby.ops_url()

    async def both_alive() -> dict[str, object] | None:
        _, body = await get_json(f"{standby_url}/status")
        fleet = body.get("fleet") or {}
        alive = [m for m in fleet.get("members", []) if m["alive"]]
        return body if len(alive) == 2 else None

    body = await wait_for(both_alive, timeout_s=20)
    fleet = body["fleet"]
    assert [o["pid"] for o in fleet["owners"] if o["folder"] == "in"] == [owner]
    me = [m for m in fleet["members"] if m["this_daemon"]]
    assert [(m["pid"], m["folders"]) for m in me] == [(standby.pid, [])]
    assert fleet["owned_here"] == []

    async def standby_ready() -> bool | None:
        status, _ = await get_json(f"{standby_url}/readyz")
        return True if status == 200 else None

    await wait_for(standby_ready, timeout_s=20)  # a standby is ready
    text = await get_text(f"{standby_url}/metrics")
    assert metric(text, "jetwatch_fleet_members") == 2
    assert metric(text, "jetwatch_folder_owned", folder="in") == 0
    assert metric(text, "jetwatch_folder_owner_info", folder="in", pid=str(owner)) == 1
    shown = await run_cli("status", "--config", str(configs[0]))
    # Port 0: no daemon can be asked through this config, so status says so (exit 4),
    # yet the ledger still shows the whole fleet.
    assert shown.code == ExitCode.NO_DAEMON, shown.output
    assert "FLEET (2 daemon(s) alive)" in shown.stdout
    assert f":{owner}" in shown.stdout
    assert PASSWORD not in shown.output
    as_json = await run_cli("status", "--json", "--config", str(configs[0]))
    data = json.loads(as_json.stdout)
    assert sorted(m["pid"] for m in data["fleet"]["members"]) == sorted(d.pid for d in daemons)


async def test_bad_ledger_input_says_one_line_and_exits_2_or_3(
    tmp_path: Path, pg_cluster: PgCluster
) -> None:
    """Wrong URL → 2; missing database or a newer schema → 3; nothing listening → 1 for the
    daemon (systemd restarts it), 3 for status; never a traceback."""
    (tmp_path / "in").mkdir()
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD, encoding="utf-8")

    def cfg(url: str) -> str:
        folders = [{"path": str(tmp_path / "in"), "job": "J"}]
        body = daemon_config("http://127.0.0.1:9", tmp_path / "x.db", folders)
        body["ledger"] = {"url": url, "password_file": str(secret)}
        return str(write_toml(tmp_path / "c.toml", body))

    wrong = await run_cli("check", "--config", cfg("mysql://u@h/db"))
    assert (wrong.code, "ledger.url" in wrong.stderr) == (2, True), wrong.output
    missing = pg_cluster.url("no_such_db", password=False)
    status = await run_cli("status", "--config", cfg(missing))
    assert status.code == 3, status.output
    assert one_line(status.stderr), status.stderr
    assert "does not exist" in status.stderr
    run = await run_cli("run", "--config", cfg(missing))
    assert (run.code, "ledger_refused" in run.output) == (3, True), run.output
    assert "Traceback" not in run.output
    down = "postgresql://postgres@127.0.0.1:9/jetwatch"
    run = await run_cli("run", "--config", cfg(down))
    assert (run.code, "ledger_unavailable" in run.output) == (1, True), run.output
    assert "Traceback" not in run.output
    status = await run_cli("status", "--config", cfg(down))
    assert (status.code, one_line(status.stderr)) == (3, True), status.output
    newer = pg_cluster.new_database()
    with psycopg.connect(newer, autocommit=True) as conn:
        conn.execute("CREATE TABLE jetwatch_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute(
            "INSERT INTO jetwatch_meta VALUES ('application', 'jetwatch-ledger'), "
            "('schema_version', %s)",
            (str(SCHEMA_VERSION + 1),),
        )
    newer_url = pg_cluster.url(newer.rsplit("/", 1)[1], password=False)
    run = await run_cli("run", "--config", cfg(newer_url))
    assert (run.code, "newer than this jetwatch" in run.output) == (3, True), run.output
    assert PASSWORD not in run.output


async def test_ledger_copy_moves_the_memory_and_nothing_is_sent_again(
    emulator_job: Job, tmp_path: Path, spawn_daemon: SpawnDaemon, pg_cluster: PgCluster
) -> None:
    """A SQLite ledger copied into PostgreSQL: the daemon on it sends only the new file."""
    server, job_id, src, dst = emulator_job
    old = [f"old-{i}.bin" for i in range(5)]
    drop(src, old)
    sqlite_cfg = daemon_config(
        server.url, tmp_path / "ledger.db", [{"path": str(src), "job": job_id, "name": "in"}]
    )
    sqlite_path = write_toml(tmp_path / "sqlite.toml", sqlite_cfg)
    daemon = await spawn_daemon(sqlite_path)
    await wait_copied(src, dst, old)
    await daemon.wait_event("post_actions_applied", timeout_s=20)
    daemon.send(signal.SIGTERM)
    assert await daemon.wait_exit(20) == 0
    url = plain_url(pg_cluster)
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD, encoding="utf-8")
    copied = await run_cli(
        "ledger", "copy", "--config", str(sqlite_path), "--to", url, "--password-file", str(secret)
    )
    assert copied.code == 0, copied.output
    assert "copied 5 files" in copied.stdout
    again = await run_cli(
        "ledger", "copy", "--config", str(sqlite_path), "--to", url, "--password-file", str(secret)
    )
    assert (again.code, "already holds" in again.stderr) == (3, True), again.output
    (pg_config,) = fleet_configs(
        tmp_path, 1, base_url=server.url, job_id=job_id, src=src, ledger_urls=[url]
    )
    daemon = await spawn_daemon(pg_config)
    await daemon.wait_event("scan_done", timeout_s=20)
    drop(src, ["new.bin"])
    await wait_copied(src, dst, ["new.bin"])
    deliveries = await received(server)
    assert duplicates(deliveries) == {}
    assert sorted(o["relativePath"] for d in deliveries for o in d["objects"]) == sorted(
        f"/{n}" for n in [*old, "new.bin"]
    )
