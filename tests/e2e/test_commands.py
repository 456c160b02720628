"""Tests for ``check --online`` and ``jobs`` against the real emulator, run as real processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jetwatch.emulators.jet import ClientSpec, EmulatorServer, Role, bootstrap_manual_job
from tests.fixtures.daemon import free_port, run_cli, write_toml
from tests.fixtures.emulator import (
    ADMIN_ID,
    ADMIN_SECRET,
    VIEWER_ID,
    VIEWER_SECRET,
    Api,
    EmulatorFactory,
    make_manual_job,
)
from tests.fixtures.host import as_user
from tests.fixtures.im_helpers import IM_PASSWORD, IM_USER
from tests.fixtures.network import ConnectProxy, Pki
from tests.fixtures.targets import ImSetup, im_call

Job = tuple[EmulatorServer, str, Path, Path]


def online_config(tmp_path: Path, base_url: str, folders: list[dict[str, Any]], **jet: Any) -> Path:
    data = {
        "jet": {
            "base_url": base_url,
            "client_id": ADMIN_ID,
            "client_secret": ADMIN_SECRET,
            "max_retries": 1,
            "connect_timeout_seconds": 2,
            **jet,
        },
        "ledger": {"path": str(tmp_path / "ledger.db")},
        "folders": folders,
    }
    return write_toml(tmp_path / "online.toml", data)


async def hot_folder_job(api: Api, src: Path, dst: Path) -> str:
    """A job with a HOT_FOLDER trigger, made through the public API."""
    (endpoint,) = (await api.ok("GET", "/v1/endpoints"))["items"]
    ids = []
    for folder in (src, dst):
        body = {"endpointId": endpoint["endpointId"], "url": folder.as_uri(), "name": folder.name}
        ids.append((await api.ok("POST", "/v1/storageProfiles", body))["storageProfileId"])
    data = {"source": {"storageProfileId": ids[0]}, "destination": {"storageProfileId": ids[1]}}
    trigger = {"type": "HOT_FOLDER", "data": {"source": {"storageProfileId": ids[0]}}}
    body = {
        "name": "Hot Job",
        "actions": [{"type": "TRANSFER", "data": data}],
        "triggers": [trigger],
    }
    job_id: str = (await api.ok("POST", "/v1/jobs", body))["jobId"]
    return job_id


async def test_check_online_ok(emulator_job: Job, tmp_path: Path) -> None:
    """A manual, running job whose source profile is the folder: a table with ok, exit 0."""
    server, job_id, src, _ = emulator_job
    path = online_config(tmp_path, server.url, [{"path": str(src), "job": "Manual Job"}])
    result = await run_cli("check", "--online", "--config", str(path))
    assert result.code == 0, result.output
    header, row = result.stdout.strip().splitlines()[-2:]
    assert header.split() == ["folder", "job", "job", "id", "verdict"]
    assert job_id in row
    assert row.split()[-1] == "ok"


async def test_check_online_paused_job(emulator_job: Job, api: Api, tmp_path: Path) -> None:
    """A paused job is reported with its reason; exit 1 (it may resume by itself)."""
    server, job_id, src, _ = emulator_job
    await api.ok("PATCH", f"/v1/jobs/{job_id}", {"paused": True})
    path = online_config(tmp_path, server.url, [{"path": str(src), "job": job_id}])
    result = await run_cli("check", "--online", "--config", str(path))
    assert result.code == 1, result.output
    assert f"problem: folders[0].job: job {job_id} is paused" in result.stderr
    assert "paused" in result.stdout.splitlines()[-1]


async def test_check_online_hot_folder_and_missing_jobs(
    emulator: EmulatorServer, api: Api, tmp_path: Path
) -> None:
    """A hot-folder job and a job that does not exist are configuration problems: exit 2."""
    src, dst = tmp_path / "hot-src", tmp_path / "hot-dst"
    src.mkdir()
    dst.mkdir()
    hot_id = await hot_folder_job(api, src, dst)
    other = tmp_path / "other"
    other.mkdir()
    folders = [{"path": str(src), "job": hot_id}, {"path": str(other), "job": "No Such Job"}]
    path = online_config(tmp_path, emulator.url, folders)
    result = await run_cli("check", "--online", "--config", str(path))
    assert result.code == 2, result.output
    assert "problem: folders[0].job: job has a HOT_FOLDER trigger" in result.stderr
    assert "problem: folders[1].job: no job with id or name 'No Such Job'" in result.stderr


async def test_check_online_folder_outside_the_source_profile(
    emulator_job: Job, tmp_path: Path
) -> None:
    """A folder that is not under the job's source profile path, or lacks profile_root."""
    server, job_id, src, _ = emulator_job
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (src / "sub").mkdir()
    folders = [
        {"path": str(outside), "job": job_id, "name": "outside"},
        {"path": str(src / "sub"), "job": job_id, "name": "sub"},
        {"path": str(src / "deeper"), "job": job_id, "name": "ok", "profile_root": str(src)},
    ]
    path = online_config(tmp_path, server.url, folders)
    result = await run_cli("check", "--online", "--config", str(path))
    assert result.code == 2, result.output
    assert f"folders[0].path: path {outside} is not under the job's source profile" in (
        result.stderr
    )
    assert f"folders[1].profile_root: set profile_root = '{src}'" in result.stderr
    assert "folders[2]" not in result.stderr
    assert result.stdout.splitlines()[-1].split()[-1] == "ok"


async def test_check_online_bad_credentials_and_api_down(emulator_job: Job, tmp_path: Path) -> None:
    """Refused credentials name the keys (exit 2); an unreachable API is exit 1; no secrets."""
    server, _, src, _ = emulator_job
    wrong = "wrong-secret-7f3a9c"
    folders = [{"path": str(src), "job": "Manual Job"}]
    path = online_config(tmp_path, server.url, folders, client_secret=wrong)
    refused = await run_cli("check", "--online", "--config", str(path))
    assert refused.code == 2, refused.output
    assert "jet.client_secret" in refused.stderr
    assert "refused the credentials" in refused.stderr
    down_url = f"http://127.0.0.1:{free_port()}"
    path = online_config(tmp_path, down_url, folders, client_secret=wrong)
    down = await run_cli("check", "--online", "--config", str(path))
    assert down.code == 1, down.output
    # The URL and the way out, not an exception class; no JSON log lines in between.
    assert f"online check failed: the Jet API at {down_url} could not be used" in down.stderr
    assert "check jet.base_url" in down.stderr
    assert "Error" not in down.stderr
    assert "{" not in down.stderr
    for result in (refused, down):
        assert wrong not in result.output
        assert "Traceback" not in result.output


async def test_jobs_lists_kind_and_paused(emulator_job: Job, api: Api, tmp_path: Path) -> None:
    """`jobs` shows id, name, manual or hot folder, and paused, without needing folders."""
    server, job_id, _, _ = emulator_job
    src, dst = tmp_path / "h1", tmp_path / "h2"
    src.mkdir()
    dst.mkdir()
    hot_id = await hot_folder_job(api, src, dst)
    await api.ok("PATCH", f"/v1/jobs/{hot_id}", {"paused": True})
    path = online_config(tmp_path, server.url, [])
    result = await run_cli("jobs", "--config", str(path))
    assert result.code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert rows[job_id].split()[-2:] == ["manual", "no"]
    assert rows[hot_id].endswith("hot folder  yes")
    assert "Manual Job" in rows[job_id]


async def test_no_command_prints_the_secret_even_at_debug(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """check, check --online, jobs and status with [log] level = "debug" never show it."""
    secret = "Sup3r-Secret-Value-0451"
    server = await emulator_factory(clients=[ClientSpec("ops", secret, Role.S2S_ADMIN)])
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    await bootstrap_manual_job(server.url, "ops", secret, src, dst, "Manual Job")
    secret_file = tmp_path / "secret"
    secret_file.write_text(secret + "\n")
    data = {
        "jet": {"base_url": server.url, "client_id": "ops", "client_secret_file": str(secret_file)},
        "ledger": {"path": str(tmp_path / "ledger.db")},
        "log": {"level": "debug"},
        "folders": [{"path": str(src), "job": "Manual Job"}],
    }
    path = write_toml(tmp_path / "c.toml", data)
    env = {"JETWATCH_LOG__LEVEL": "debug"}
    runs = [
        await run_cli("check", "--config", str(path), env=env),
        await run_cli("check", "--online", "--config", str(path), env=env),
        await run_cli("jobs", "--config", str(path), env=env),
        await run_cli("status", "--config", str(path), env=env),
        await run_cli(
            "check",
            "--online",
            "--config",
            str(path),
            env={"JETWATCH_JET__CLIENT_SECRET": secret, **env},
        ),
    ]
    assert [r.code for r in runs[:3]] == [0, 0, 0], [r.output for r in runs]
    assert any("jet_token_refreshed" in r.stderr for r in runs), "debug logs were written"
    for result in runs:
        assert secret not in result.output
    assert "Manual Job" in runs[2].stdout


# ---- other targets ---------------------------------------------------------------------


def im_config(tmp_path: Path, base_url: str, folders: list[dict[str, Any]], **im: Any) -> Path:
    section = {"base_url": base_url, "username": IM_USER, "password": IM_PASSWORD, **im}
    data = {
        "integration_manager": {"max_retries": 1, **section},
        "ledger": {"path": str(tmp_path / "ledger.db")},
        "folders": [{"target": "integration-manager", **f} for f in folders],
    }
    return write_toml(tmp_path / "im.toml", data)


async def test_check_online_im_folders(im_job: ImSetup, tmp_path: Path) -> None:
    """IM folders are checked through their target: found, missing, inactive, bad password."""
    server, config_id, src, _ = await im_job()
    other = tmp_path / "other"
    other.mkdir()
    folders = [{"path": str(src), "job": config_id}, {"path": str(other), "job": "999"}]
    path = im_config(tmp_path, server.url, folders)
    result = await run_cli("check", "--online", "--config", str(path))
    assert result.code == 2, result.output
    rows = result.stdout.strip().splitlines()[-2:]
    assert rows[0].split()[-2:] == [config_id, "ok"]
    assert "problem: folders[1].job: job config '999' not found" in result.stderr
    await im_call(server.url, "PUT", f"/api/jobconfigs/{config_id}", {"active": False})
    path = im_config(tmp_path, server.url, folders[:1])
    paused = await run_cli("check", "--online", "--config", str(path))
    assert paused.code == 1, paused.output
    assert f"problem: folders[0].job: job config {config_id} is paused" in paused.stderr
    path = im_config(tmp_path, server.url, folders[:1], password="wrong-im-password")
    refused = await run_cli("check", "--online", "--config", str(path))
    assert refused.code == 2, refused.output
    assert "config error: integration_manager.password: the Integration Manager API refused" in (
        refused.stderr
    )
    assert "wrong-im-password" not in refused.output


async def test_jetstream_folder_without_the_vendor_module(tmp_path: Path) -> None:
    """`check` says the vendor module is missing (exit 2); `jobs` needs Jet credentials."""
    (tmp_path / "in").mkdir()
    section = {"username": "u", "password": "p", "destination_host": "receiver.example"}
    data = {
        "jetstream": section,
        "ledger": {"path": str(tmp_path / "ledger.db")},
        "folders": [{"path": str(tmp_path / "in"), "target": "jetstream", "job": "unused"}],
    }
    path = write_toml(tmp_path / "js.toml", data)
    result = await run_cli("check", "--config", str(path))
    assert result.code == 2, result.output
    assert "config error: jetstream: the jetstream module is not installed" in result.stderr
    assert "warning: folders[0].job: not used by jetstream folders" in result.stdout
    jobs = await run_cli("jobs", "--config", str(path))
    assert jobs.code == 2, jobs.output
    assert "config error: jet.client_id: required" in jobs.stderr


# ---- what people read ------------------------------------------------------------------


async def test_check_online_with_a_view_only_client(emulator_job: Job, tmp_path: Path) -> None:
    """A JET_VIEW_ONLY client: the role and the fix, not an exception class; no log lines."""
    server, _, src, _ = emulator_job
    folders = [{"path": str(src), "job": "Manual Job"}]
    path = online_config(
        tmp_path, server.url, folders, client_id=VIEWER_ID, client_secret=VIEWER_SECRET
    )
    result = await run_cli("check", "--online", "--config", str(path))
    assert result.code == 2, result.output
    assert "jet.client_id = 'viewer'" in result.stderr
    assert "this client's role cannot create deliveries: use an S2S_ADMIN client" in result.stderr
    assert "ForbiddenError" not in result.output
    assert "{" not in result.stderr  # no JSON log line in the human output


async def test_check_offline_directories_that_cannot_be_written(open_tmp: Path) -> None:
    """done_dir, failed_dir or the ledger's directory under a file, or not writable by the
    daemon's user: exit 2, one line per key."""
    tmp_path = open_tmp
    (tmp_path / "in").mkdir()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    locked = tmp_path / "root-only"
    locked.mkdir(mode=0o755)
    folder = {"path": str(tmp_path / "in"), "job": "J", "post_action": "move"}
    folder |= {"done_dir": str(blocker / "done"), "failed_dir": str(locked / "failed")}
    path = online_config(tmp_path, "http://127.0.0.1:9", [folder])
    text = path.read_text().replace(str(tmp_path / "ledger.db"), str(blocker / "l.db"))
    path.write_text(text)
    result = await run_cli("check", "--config", str(path))
    assert result.code == 2, result.output
    assert f"config error: folders[0].done_dir: {blocker}/done cannot be created: " in (
        result.stderr
    )
    assert f"config error: ledger.path: {blocker} is not a directory" in result.stderr
    # As an unprivileged user (the daemon's usual account) the root-owned one is refused too.
    path.chmod(0o644)
    as_other = await run_cli("check", "--config", str(path), prefix=as_user())
    assert as_other.code == 2, as_other.output
    assert f"folders[0].failed_dir: {locked}/failed is not writable by this user" in (
        as_other.stderr
    )


async def test_check_online_says_which_proxy_and_ca_it_used(
    https_emulator: EmulatorServer, pki: Pki, connect_proxy: ConnectProxy, tmp_path: Path
) -> None:
    """Through HTTPS_PROXY to an API with a private CA: with ca_file it is ok and says the
    proxy (and where it came from) and the CAs; without, exit 1 and why TLS failed."""
    job_id, src, _ = await make_manual_job(https_emulator, tmp_path, ca_file=pki.ca)
    folders = [{"path": str(src), "job": job_id}]
    env = {"HTTPS_PROXY": connect_proxy.url}
    path = online_config(tmp_path, https_emulator.url, folders, ca_file=str(pki.ca))
    result = await run_cli("check", "--online", "--config", str(path), env=env)
    assert result.code == 0, result.output
    assert (
        f"network: Jet API {https_emulator.url}: via proxy {connect_proxy.url} "
        f"(from HTTPS_PROXY); TLS trusting the system CAs and {pki.ca}"
    ) in result.stdout
    assert connect_proxy.tunnels
    path = online_config(tmp_path, https_emulator.url, folders)
    refused = await run_cli("check", "--online", "--config", str(path), env=env)
    assert refused.code == 1, refused.output
    assert "via proxy" in refused.stdout
    host = https_emulator.url.removeprefix("https://")
    assert f"TLS handshake with {host} failed: certificate verify failed" in refused.stderr


async def test_check_online_folder_held_reasons_for_growing(
    emulator_job: Job, tmp_path: Path
) -> None:
    """growing = true with a job that does not follow growing objects: exit 2, named key."""
    server, job_id, src, _ = emulator_job
    folders = [{"path": str(src), "job": job_id, "growing": True}]
    path = online_config(tmp_path, server.url, folders)
    result = await run_cli("check", "--online", "--config", str(path))
    assert result.code == 2, result.output
    assert "problem: folders[0].growing: growing = true needs a job that follows" in result.stderr
