"""Folder ownership: the lease rounds, and what this daemon may act on between them.

Every ``renew_interval_s(lease_s)`` one round renews this daemon's leases, hands over what
it was asked to give up, and claims its fair share of free or lapsed folders (the ledger
decides, on the database server's clock). Locally a lease counts only until
``acting_window_s(lease_s)`` after the round that renewed it was *sent*, on the monotonic
clock: an owner that cannot renew (database gone, network cut) stops acting before its
lease can expire anywhere, and says so. A folder handed over to balance the fleet first
stops being acted on, waits for the submissions in flight, then is released.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import structlog

from jetwatch import metrics
from jetwatch.domain.clock import SYSTEM_CLOCK, Clock
from jetwatch.domain.fleet import LeaseGrant, acting_window_s, renew_interval_s
from jetwatch.domain.store import LedgerStore
from jetwatch.domain.wake import sleep_or_wake
from jetwatch.errors import LedgerUnavailableError

log = structlog.get_logger(__name__)

SOLE_ROUND_S = 60.0  # leases that never lapse (one host): a safety net, reloads nudge
NUDGED_ROUND_S = 3.0  # a nudged round runs this long after the last one (the default rate)


class FolderOwnership:
    """Long-lived component: holds this daemon's folder leases; ``changed`` rings on change."""

    def __init__(
        self,
        ledger: LedgerStore,
        labels: Callable[[], Iterable[str]],
        *,
        lease_s: float,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._ledger = ledger
        self._labels = labels
        self._lease_s = lease_s
        self._clock = clock
        self.changed = asyncio.Event()
        self._nudged = asyncio.Event()
        self._last_round_at = -math.inf
        self._owned: dict[str, float] = {}  # folder → monotonic time it was taken over
        self._valid_until = -math.inf  # monotonic: acting stops here without a renewal
        self._draining: set[str] = set()
        self._acting: dict[str, int] = {}
        self._problem = ""
        self._lapsed_said = False
        self._forever = False  # one host (SQLite): leases never lapse, nobody owned before
        self.members = 1
        self.rounds = 0

    # ---- what the stages ask ---------------------------------------------------------
    def may_act(self, folder: str) -> bool:
        return (
            folder in self._owned
            and folder not in self._draining
            and self._clock.monotonic() < self._valid_until
        )

    def owned_since(self, folder: str) -> float:
        if self._forever and folder in self._owned:
            return -math.inf  # nobody else can have acted on it: nothing to wait for
        return self._owned.get(folder, math.inf)

    @contextmanager
    def acting(self, folder: str) -> Iterator[bool]:
        self._acting[folder] = self._acting.get(folder, 0) + 1
        try:
            yield self.may_act(folder)
        finally:
            self._acting[folder] -= 1

    def acting_on(self) -> frozenset[str]:
        """The folders this daemon may act on now."""
        return frozenset(f for f in self._owned if self.may_act(f))

    @property
    def problem(self) -> str:
        """Why leases cannot be renewed ("" when the last round worked)."""
        return self._problem

    # ---- the loop --------------------------------------------------------------------
    def nudge(self) -> None:
        """Run a round now: the configured folders changed (a reload)."""
        self._nudged.set()

    async def run(self) -> None:
        interval_s = renew_interval_s(self._lease_s)
        while True:
            self._nudged.clear()
            await self.run_once()
            self._last_round_at = self._clock.monotonic()
            # One host (SQLite): a round only takes in new folders, which a reload nudges.
            wait_s = SOLE_ROUND_S if self._forever and not self._problem else interval_s
            if self._owned and self._valid_until < math.inf:
                # Wake at the end of the acting window too, to stop acting on time.
                wait_s = min(wait_s, max(0.05, self._valid_until - self._clock.monotonic()))
            if await sleep_or_wake(self._nudged, wait_s):
                # Not at once: a reload's removed folders keep tracking what is in flight
                # for a moment, as when rounds ran every few seconds.
                since_s = self._clock.monotonic() - self._last_round_at
                await asyncio.sleep(max(0.0, min(interval_s, NUDGED_ROUND_S) - since_s))

    async def run_once(self) -> None:
        """One lease round; on failure, the acting window runs out on its own."""
        labels = sorted(set(self._labels()))
        release = sorted(f for f in self._draining if not self._acting.get(f))
        sent = self._clock.monotonic()
        # A round that hangs (network cut) must not delay saying that acting stopped.
        lapse = None
        if self._owned and self._valid_until < math.inf:
            delay_s = max(0.0, self._valid_until - sent)
            lapse = asyncio.get_running_loop().call_later(delay_s, self._lapse)
        try:
            grant = await self._ledger.lease_round(labels, self._lease_s, release)
        except LedgerUnavailableError as exc:
            self._failed(str(exc))
            return
        finally:
            if lapse is not None:
                lapse.cancel()
        self.rounds += 1
        if self._problem:
            log.info("leases_renewing_again", folders=sorted(grant.owned))
        self._problem, self._lapsed_said = "", False
        self._forever = grant.valid_s is None
        window = math.inf if grant.valid_s is None else acting_window_s(grant.valid_s)
        self._valid_until = sent + window
        self._apply(grant, set(release))

    def _apply(self, grant: LeaseGrant, released: set[str]) -> None:
        now = self._clock.monotonic()
        gained = grant.owned - self._owned.keys()
        lost = self._owned.keys() - grant.owned
        for folder in sorted(gained):
            self._owned[folder] = now
            log.info("folder_lease_acquired", folder=folder, members=grant.members)
        for folder in sorted(lost):
            del self._owned[folder]
            event = "folder_handed_over" if folder in released else "folder_lease_lost"
            (log.info if folder in released else log.warning)(event, folder=folder)
        self._draining &= set(self._owned)
        if grant.surplus and not self._draining:
            # The last ones by name: every member picks the same way, so none ping-pongs.
            for folder in sorted(self._owned)[-grant.surplus :]:
                self._draining.add(folder)
                log.info("folder_handing_over", folder=folder, members=grant.members)
        self.members = grant.members
        self._gauges()
        if gained or lost or self._draining:
            self.changed.set()

    def _failed(self, error: str) -> None:
        metrics.LEASE_ROUND_FAILURES.inc()
        if not self._problem:
            log.error("lease_renewal_failed", error=error, folders=sorted(self._owned))
        self._problem = f"cannot renew folder leases: {error}"
        if self._clock.monotonic() >= self._valid_until:
            self._lapse()

    def _lapse(self) -> None:
        """The acting window is over without a renewal: stop, say so, let others take over."""
        if not self._owned or self._lapsed_said:
            return
        self._lapsed_said = True
        if not self._problem:
            self._problem = "cannot renew folder leases: the lease round did not finish"
        log.error(
            "folder_leases_lapsing",
            folders=sorted(self._owned),
            effect="stopped acting on them before their leases can expire; "
            "another daemon may take them over",
        )
        self._owned.clear()
        self._gauges()
        self.changed.set()

    def _gauges(self) -> None:
        metrics.FLEET_MEMBERS.set(self.members)
        for folder in self._labels():
            metrics.FOLDER_OWNED.labels(folder).set(1 if folder in self._owned else 0)

    async def leave(self) -> None:
        """A clean stop: free every lease now, so another daemon takes over at once."""
        self._owned.clear()
        try:
            await self._ledger.leave()
        except LedgerUnavailableError as exc:
            log.warning("leases_not_released", error=str(exc), effect="they lapse on their own")
