"""`jetwatch demo` end to end as a real process: exit 0 and its summary line."""

from __future__ import annotations

import re

import pytest

from tests.fixtures.daemon import run_cli

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
