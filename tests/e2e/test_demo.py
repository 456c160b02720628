"""`jetwatch demo` end to end as a real process: exit 0 and its summary line."""

from __future__ import annotations

import asyncio
import re
import shlex
import signal
import sys
from pathlib import Path

import pytest

from tests.fixtures.daemon import child_env, run_cli

pytestmark = pytest.mark.slow


async def test_demo_delivers_every_sample_once() -> None:
    """The demo exits 0 and prints "summary: 5/5 files ..." with no failure lines."""
    result = await run_cli("demo", timeout_s=120)
    assert result.code == 0, result.output[-3000:]
    summary = re.search(
        r"\[demo\] summary: (\d+)/(\d+) files, \d+ bytes, \d+ deliveries", result.stdout
    )
    assert summary is not None, result.stdout
    assert summary.group(1) == summary.group(2) == "5"
    assert "FAILED" not in result.stdout
    assert "Traceback" not in result.output


async def test_demo_keep_says_deliveries_and_how_to_run_status() -> None:
    """--keep: the exact `status --config` command works against the running demo, and each
    file dropped afterwards is named once it arrived."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jetwatch", "demo", "--keep",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=child_env(),
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []

    async def line_with(text: str) -> str:
        while True:
            raw = await asyncio.wait_for(proc.stdout.readline(), 120)  # type: ignore[union-attr]
            assert raw, "\n".join(lines)
            lines.append(raw.decode(errors="replace").rstrip())
            if text in lines[-1]:
                return lines[-1]

    try:
        dropped = re.search(r"drop files into (\S+);", await line_with("drop files into"))
        assert dropped is not None
        folder = Path(dropped[1])
        hint = await line_with(" status --config ")
        command = shlex.split(hint.split("in another terminal: ", 1)[1])
        status = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=child_env(),
        )  # fmt: skip
        out, err = await asyncio.wait_for(status.communicate(), 60)
        assert status.returncode == 0, (out + err).decode()
        assert b"DAEMON  http://127.0.0.1:" in out
        assert b" ready" in out
        (folder / "dropped-later.txt").write_bytes(b"late")
        await line_with("[demo] delivered dropped-later.txt (4 bytes)")
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 60) == 0, "\n".join(lines)
