"""Stop requests and the absolute shutdown deadline (jetwatch.app.lifecycle)."""

from __future__ import annotations

import asyncio
import sys
import textwrap

from jetwatch.app.lifecycle import EXIT_OVERRAN, Lifecycle
from tests.fixtures.daemon import child_env

WEDGED = textwrap.dedent(
    """
    import asyncio, time
    from jetwatch import logs
    from jetwatch.app.lifecycle import Lifecycle

    async def main():
        logs.configure_logging("info", "json")
        Lifecycle(hard_exit=True).exit_within(0.3)
        time.sleep(60)  # a call that never returns: the loop is wedged

    asyncio.run(main())
    print("not reached")
    """
)


async def test_deadline_ends_a_wedged_process() -> None:
    """With hard_exit, a process still up at the deadline exits 1 and says why."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WEDGED,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(),
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == EXIT_OVERRAN
    assert b"shutdown_overran" in err
    assert b"not reached" not in out


async def test_second_stop_request_forces_and_reload_is_separate() -> None:
    """The first stop is graceful, the second forces; a reload request is its own flag."""
    life = Lifecycle()
    life.request_reload()
    await asyncio.wait_for(life.wait_stop_or_reload(), 1)
    assert life.reload.is_set()
    assert not life.stop.is_set()
    life.request_stop()
    assert life.stop.is_set()
    assert not life.force.is_set()
    life.request_stop()
    assert life.force.is_set()
    life.exit_within(0.01)  # without hard_exit: never ends the test process
    assert life._timer is None
