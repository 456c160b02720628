"""Tests for the offline commands as real processes: exit codes, one line per problem, ledgers."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from jetwatch import __version__
from jetwatch.domain.states import FileState
from jetwatch.errors import ExitCode
from jetwatch.ledger.sqlite import SqliteLedger
from tests.fixtures.daemon import child_env, free_port, run_cli, write_toml
from tests.fixtures.ledger import T0, delivered, make_keys, submitted_batch

SECRET = "cli-test-secret-value"


def config(tmp_path: Path, **jet: Any) -> dict[str, Any]:
    (tmp_path / "in").mkdir(exist_ok=True)
    return {
        "jet": {"base_url": "http://127.0.0.1:9", "client_id": "cid", "client_secret": SECRET}
        | jet,
        "ledger": {"path": str(tmp_path / "state" / "ledger.db")},
        # Nothing listens there: `status` must say the daemon is not answering.
        "http": {"listen": f"127.0.0.1:{free_port()}"},
        "folders": [{"path": str(tmp_path / "in"), "job": "Job", "name": "in"}],
    }


async def make_ledger(path: Path) -> None:
    """A ledger with 2 delivered files, 3 in flight and 1 given up, in folder "in"."""
    async with await SqliteLedger.open(path) as ledger:
        await delivered(ledger, "in", make_keys(2, "done"), T0)
        await submitted_batch(ledger, "in", make_keys(3, "busy"), T0, "dlv-busy")
        (file_id,) = await ledger.add_stable("in", make_keys(1, "bad"), T0)
        batch_id = await ledger.create_batch("in", [file_id], T0)
        await ledger.mark_submitting(batch_id, "job-1", T0)
        await ledger.fail_batch(batch_id, "refused", T0, [], [file_id])


async def test_version() -> None:
    """--version prints the package version and exits 0."""
    result = await run_cli("--version")
    assert result.code == 0
    assert result.stdout.strip() == f"jetwatch {__version__}"


async def test_check_bad_config_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    """One line per problem naming its key, exit 2, and never a traceback."""
    data = config(tmp_path, base_url="ftp://x", max_retries=-1)
    data["http"] = {"listen": "nowhere"}
    data["folders"][0] |= {"setle_seconds": 3, "post_action": "move"}
    path = write_toml(tmp_path / "bad.toml", data)
    result = await run_cli("check", "--config", str(path))
    assert result.code == 2
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    keys = [line.split(": ")[1] for line in lines]
    assert sorted(keys) == sorted(
        [
            "jet.base_url",
            "jet.max_retries",
            "http.listen",
            "folders[0].setle_seconds",
            "folders[0].done_dir",
        ]
    )
    assert all(line.startswith("config error: ") for line in lines)
    assert result.stdout == ""


async def test_check_missing_file_and_bad_toml(tmp_path: Path) -> None:
    """A missing --config file or broken TOML is exit 2 naming --config."""
    missing = await run_cli("check", "--config", str(tmp_path / "nope.toml"))
    assert missing.code == 2
    assert "config error: --config: " in missing.stderr
    (tmp_path / "broken.toml").write_text("[jet\n")
    broken = await run_cli("check", "--config", str(tmp_path / "broken.toml"))
    assert broken.code == 2
    assert "not valid TOML" in broken.stderr
    assert "Traceback" not in missing.output + broken.output


async def test_check_ok_and_jetwatch_config_env(tmp_path: Path) -> None:
    """A good config exits 0, found through --config or $JETWATCH_CONFIG."""
    path = write_toml(tmp_path / "ok.toml", config(tmp_path))
    by_option = await run_cli("check", "--config", str(path))
    assert by_option.code == 0, by_option.output
    assert "config ok: 1 folder\n" in by_option.stdout
    by_env = await run_cli("check", env={"JETWATCH_CONFIG": str(path)})
    assert by_env.code == 0, by_env.output
    none = await run_cli("check")
    assert none.code == 2
    assert none.stderr == (
        "config error: --config: no configuration: pass --config FILE or set $JETWATCH_CONFIG\n"
    )


async def test_usage_errors_exit_2() -> None:
    """argparse's usage errors keep exit code 2 (bad usage)."""
    assert (await run_cli("ledger")).code == 2
    assert (await run_cli("ledger", "shred")).code == 2
    assert (await run_cli("nonsense")).code == 2


async def test_status_on_a_ledger_with_the_daemon_down(tmp_path: Path) -> None:
    """status reads the ledger without credentials and says the daemon does not answer."""
    data = config(tmp_path)
    del data["jet"]["client_secret"]  # an operator without access to the secret
    path = write_toml(tmp_path / "c.toml", data)
    await make_ledger(tmp_path / "state" / "ledger.db")
    text = await run_cli("status", "--config", str(path))
    assert text.code == ExitCode.NO_DAEMON, text.output  # scripts can tell
    assert "DAEMON  not answering at http://127.0.0.1:" in text.stdout
    assert "IN FLIGHT (1)" in text.stdout
    assert "dlv-busy" in text.stdout
    assert "RECENT FAILURES (1)" in text.stdout
    as_json = await run_cli("status", "--json", "--config", str(path))
    assert as_json.code == ExitCode.NO_DAEMON, as_json.output
    data = json.loads(as_json.stdout)
    (folder,) = data["folders"]
    assert folder["folder"] == "in"
    assert folder["counts"]["SUBMITTED"] == 3
    assert folder["counts"]["FAILED"] == 1
    assert folder["counts"]["TRANSFERRED"] == 2
    assert data["daemon"]["reachable"] is False
    assert data["in_flight"][0]["delivery_id"] == "dlv-busy"


async def test_status_without_a_ledger_and_with_a_corrupt_one(tmp_path: Path) -> None:
    """No ledger yet is exit 1 with a sentence; a foreign file is exit 3 (refused)."""
    path = write_toml(tmp_path / "c.toml", config(tmp_path))
    none = await run_cli("status", "--config", str(path))
    assert none.code == 1
    assert "no ledger at" in none.stderr
    assert not (tmp_path / "state" / "ledger.db").exists()
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "ledger.db").write_bytes(b"this is not sqlite" * 300)
    corrupt = await run_cli("status", "--config", str(path))
    assert corrupt.code == 3
    assert "move-aside" in corrupt.stderr
    assert "Traceback" not in corrupt.output


async def test_ledger_move_aside(tmp_path: Path) -> None:
    """move-aside renames a refused ledger (never deletes it) so a new one can start."""
    path = write_toml(tmp_path / "c.toml", config(tmp_path))
    ledger = tmp_path / "state" / "ledger.db"
    ledger.parent.mkdir()
    garbage = b"this is not sqlite" * 300
    ledger.write_bytes(garbage)
    moved = await run_cli("ledger", "move-aside", "--config", str(path))
    assert moved.code == 0, moved.output
    assert not ledger.exists()
    (aside,) = ledger.parent.glob("ledger.db.corrupt-*")
    assert aside.read_bytes() == garbage
    assert str(aside) in moved.stdout
    again = await run_cli("ledger", "move-aside", "--config", str(path))
    assert again.code == 0
    assert "no ledger" in again.stdout


async def test_ledger_retry_failed(tmp_path: Path) -> None:
    """retry-failed puts given-up files back in the queue; without a ledger it creates none."""
    path = write_toml(tmp_path / "c.toml", config(tmp_path))
    ledger_path = tmp_path / "state" / "ledger.db"
    nothing = await run_cli("ledger", "retry-failed", "--config", str(path))
    assert nothing.code == 0
    assert not ledger_path.exists()
    await make_ledger(ledger_path)
    result = await run_cli("ledger", "retry-failed", "--config", str(path))
    assert result.code == 0, result.output
    assert result.stdout.startswith("1 failed file queued again")
    async with await SqliteLedger.open(ledger_path) as ledger:
        counts = (await ledger.counts("in"))["in"]
    assert counts.get(FileState.FAILED, 0) == 0
    assert counts[FileState.STABLE] == 1


async def test_check_names_console_and_webhook_without_their_secrets(tmp_path: Path) -> None:
    """check says where the console listens and where notifications go: host only."""
    cfg = config(tmp_path)
    cfg["http"] = {"listen": "0.0.0.0:9108", "actions": True, "token": "tok-0123456789abcdef"}
    cfg["notify"] = {"webhook_url": "http://hooks.example.com/services/T0/B0/SECRETKEY"}
    path = write_toml(tmp_path / "c.toml", cfg)
    result = await run_cli("check", "--config", str(path))
    assert result.code == 0, result.output
    assert "console: http://0.0.0.0:9108/ (actions on, token set)" in result.stdout
    assert "notify: webhook at http://hooks.example.com for failed, held, recovered, down" in (
        result.stdout
    )
    assert "warning: http.actions: on, and http.listen 0.0.0.0:9108 is reachable" in result.stdout
    assert "warning: notify.webhook_url: plain http to another host" in result.stdout
    assert "SECRETKEY" not in result.output
    assert "tok-0123456789abcdef" not in result.output
    cfg["notify"] = {"webhook_url": "ftp://hooks.example.com/services/T0/B0/SECRETKEY"}
    bad = await run_cli("check", "--config", str(write_toml(tmp_path / "bad.toml", cfg)))
    assert bad.code == 2
    assert "config error: notify.webhook_url: not an http(s) URL with a host" in bad.stderr
    assert "SECRETKEY" not in bad.output


async def test_status_into_a_closed_pipe_says_nothing(tmp_path: Path) -> None:
    """`jetwatch status | head -1`: the reader is gone; no traceback, no BrokenPipeError."""
    path = write_toml(tmp_path / "c.toml", config(tmp_path))
    await make_ledger(tmp_path / "state" / "ledger.db")
    for args in (["status"], ["status", "--json"]):
        read_end, write_end = os.pipe()
        os.close(read_end)  # like head after its first line
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "jetwatch", *args, "--config", str(path),
            stdout=write_end, stderr=asyncio.subprocess.PIPE, env=child_env(),
        )  # fmt: skip
        os.close(write_end)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert err == b"", (args, err)
        assert proc.returncode == ExitCode.FAILURE


async def test_move_aside_of_a_healthy_ledger_needs_force(tmp_path: Path) -> None:
    """A ledger the daemon would open is not renamed without --force: its memory would go."""
    path = write_toml(tmp_path / "c.toml", config(tmp_path))
    ledger = tmp_path / "state" / "ledger.db"
    await make_ledger(ledger)
    refused = await run_cli("ledger", "move-aside", "--config", str(path))
    assert refused.code == ExitCode.FAILURE
    assert "is healthy" in refused.stderr
    assert "--force" in refused.stderr
    assert ledger.exists()
    forced = await run_cli("ledger", "move-aside", "--force", "--config", str(path))
    assert forced.code == 0, forced.output
    assert not ledger.exists()
    assert len(list(ledger.parent.glob("ledger.db.corrupt-*"))) == 1


async def test_folders_key_by_key_from_the_environment(tmp_path: Path) -> None:
    """JETWATCH_FOLDERS__PATH cannot work; the message says what does."""
    result = await run_cli("check", env={"JETWATCH_FOLDERS__PATH": str(tmp_path)})
    assert result.code == 2
    assert "$JETWATCH_FOLDERS__PATH: folders cannot be set one key at a time" in result.stderr
    assert "JETWATCH_FOLDERS to a JSON list" in result.stderr
    assert "[[folders]] (double brackets)" not in result.stderr
