"""Folder ownership on the monotonic clock: the acting window, lapsing, hand-over, one host."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from jetwatch.domain.fleet import LeaseGrant, acting_window_s
from jetwatch.errors import LedgerUnavailableError
from jetwatch.ledger.sqlite import SqliteLedger
from jetwatch.pipeline.ownership import FolderOwnership
from tests.fixtures.clock import FakeClock
from tests.fixtures.emulator import wait_for

LEASE_S = 15.0


class FakeLeases:
    """A ledger's lease side only: grants what it is told, or fails like a lost network."""

    def __init__(self) -> None:
        self.owned: frozenset[str] = frozenset()
        self.surplus = 0
        self.down = False
        self.released: list[list[str]] = []

    async def lease_round(
        self, folders: Sequence[str], lease_s: float, release: Sequence[str] = ()
    ) -> LeaseGrant:
        if self.down:
            raise LedgerUnavailableError("ledger db: connection refused")
        self.released.append(list(release))
        self.owned -= set(release)
        return LeaseGrant(self.owned, lease_s, 2, self.surplus)


def ownership(leases: FakeLeases, clock: FakeClock) -> FolderOwnership:
    return FolderOwnership(leases, lambda: ["a", "b"], lease_s=LEASE_S, clock=clock)  # type: ignore[arg-type]


async def test_an_owner_that_cannot_renew_stops_acting_before_the_lease_can_lapse() -> None:
    """Acting ends acting_window_s after the last round that worked was sent, and it says so."""
    clock, leases = FakeClock(), FakeLeases()
    leases.owned = frozenset({"a"})
    owner = ownership(leases, clock)
    await owner.run_once()
    assert owner.acting_on() == {"a"}
    assert owner.changed.is_set()
    owner.changed.clear()
    leases.down = True
    clock.advance(acting_window_s(LEASE_S) - 0.1)
    with capture_logs() as logs:
        await owner.run_once()
        assert owner.may_act("a")  # still inside the window
        assert owner.problem.startswith("cannot renew folder leases")
        clock.advance(0.2)
        assert not owner.may_act("a")  # the window is over, with or without a round
        await owner.run_once()
    assert acting_window_s(LEASE_S) < LEASE_S - 1
    assert [e["event"] for e in logs] == ["lease_renewal_failed", "folder_leases_lapsing"]
    assert owner.changed.is_set()
    assert owner.acting_on() == frozenset()
    leases.down = False
    await owner.run_once()
    assert owner.acting_on() == {"a"}
    assert owner.problem == ""
    assert owner.owned_since("a") == clock.monotonic()  # taken over again: a new start


async def test_a_surplus_folder_is_drained_then_released() -> None:
    """A folder handed over stops being acted on at once, is released once nothing acts."""
    clock, leases = FakeClock(), FakeLeases()
    leases.owned, leases.surplus = frozenset({"a", "b"}), 1
    owner = ownership(leases, clock)
    await owner.run_once()
    assert owner.acting_on() == {"a"}  # "b" (the last by name) is being handed over
    leases.surplus = 0
    with owner.acting("b") as allowed:
        assert not allowed
        await owner.run_once()  # a submission is still on its way: not released yet
        assert leases.released[-1] == []
    await owner.run_once()
    assert leases.released[-1] == ["b"]
    assert owner.acting_on() == {"a"}
    assert not owner.may_act("b")


async def test_one_host_owns_every_folder_for_ever(tmp_path: Path) -> None:
    """SQLite: the ledger lock already makes the daemon the only one; no lease ever lapses."""
    clock = FakeClock()
    async with await SqliteLedger.open(tmp_path / "ledger.db") as ledger:
        owner = FolderOwnership(ledger, lambda: ["a", "b"], lease_s=LEASE_S, clock=clock)
        await owner.run_once()
        clock.advance(1e6)
        assert owner.acting_on() == {"a", "b"}
        assert owner.owned_since("a") == float("-inf")  # in-doubt batches wait for no one
        assert (await ledger.fleet()).shared is False


@pytest.mark.parametrize("lease_s", [2.0, 15.0, 60.0])
def test_the_acting_window_ends_before_the_lease_and_after_a_renewal(lease_s: float) -> None:
    from jetwatch.domain.fleet import renew_interval_s

    assert renew_interval_s(lease_s) < acting_window_s(lease_s) < lease_s


async def test_one_host_rounds_rarely_but_a_reload_nudge_runs_one_at_once(
    tmp_path: Path,
) -> None:
    """SQLite leases never lapse: the loop does not poll every few seconds; a reload's new
    folders are taken over by a round that a nudge starts at once."""
    labels = ["a"]
    async with await SqliteLedger.open(tmp_path / "ledger.db") as ledger:
        owner = FolderOwnership(ledger, lambda: labels, lease_s=3600.0)

        async def rounds(n: int) -> bool | None:
            return owner.rounds == n or None

        task = asyncio.create_task(owner.run())
        try:
            await wait_for(lambda: rounds(1), timeout_s=10)
            assert owner.acting_on() == {"a"}
            labels.append("b")
            owner.nudge()
            await wait_for(lambda: rounds(2), timeout_s=10)
            assert owner.acting_on() == {"a", "b"}
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
