"""How stages tell each other there is work: doorbells per stage and one typed mailbox.

Stages talk through the ledger; these only say "look again now". Every loop also wakes on
its own timer, so a lost wake-up costs latency, never data (litestream's rule).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from enum import StrEnum

import structlog

from jetwatch.domain.clock import Clock
from jetwatch.domain.states import FileKey
from jetwatch.errors import LeaseLostError, LedgerUnavailableError

log = structlog.get_logger(__name__)

LEDGER_RETRY_S = 2.0  # a stage whose ledger cannot be used tries again this soon


class Stage(StrEnum):
    """A long-lived component another one may wake."""

    BATCH = "batch"  # new STABLE files: form batches
    DELIVER = "deliver"  # new OPEN batches, a hold to look at, a path freed
    TRACK = "track"  # a batch was just submitted
    ACTIONS = "actions"  # files became TRANSFERRED or FAILED


async def sleep_or_wake(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait for ``event`` at most ``timeout_s``; True when it was set (then clear it)."""
    if event.is_set():  # wait_for with a zero timeout would not look
        event.clear()
        return True
    try:
        await asyncio.wait_for(event.wait(), max(0.0, timeout_s))
    except TimeoutError:
        return False
    event.clear()
    return True


class Wakeups:
    """One doorbell per :class:`Stage`, and the files found gone before their submission.

    ``files_gone`` is the one message that carries data: a folder's intake keeps an
    in-memory set of the file keys the ledger holds, and a key the deliverer found gone
    (GONE in the ledger, never sent) must be offered again if the file comes back. It rings
    that folder's intake bell (``intake_bell``): an idle intake sleeps long.
    """

    def __init__(self) -> None:
        self._bells = {stage: asyncio.Event() for stage in Stage}
        self._gone: dict[str, list[FileKey]] = {}
        self._intake_bells: dict[str, asyncio.Event] = {}

    def wake(self, *stages: Stage) -> None:
        """Ring the doorbells of ``stages``."""
        for stage in stages:
            self._bells[stage].set()

    def clear(self, stage: Stage) -> None:
        """Forget a ring: the stage is about to look anyway."""
        self._bells[stage].clear()

    async def sleep(self, stage: Stage, timeout_s: float) -> bool:
        """Sleep until ``stage`` is woken or ``timeout_s`` passed; True when woken."""
        return await sleep_or_wake(self._bells[stage], timeout_s)

    def intake_bell(self, folder: str) -> asyncio.Event:
        """The doorbell of ``folder``'s intake (one per label: a reloaded intake shares it)."""
        return self._intake_bells.setdefault(folder, asyncio.Event())

    def files_gone(self, folder: str, keys: Iterable[FileKey]) -> None:
        """Tell ``folder``'s intake these keys are GONE: back unchanged means offer again."""
        gone = self._gone.setdefault(folder, [])
        gone.extend(keys)
        if gone:
            self.intake_bell(folder).set()

    def take_gone(self, folder: str) -> list[FileKey]:
        """The keys found gone in ``folder`` since the last call."""
        return self._gone.pop(folder, [])


async def run_stage(
    wakeups: Wakeups,
    stage: Stage,
    step: Callable[[], Awaitable[float | None]],
    *,
    clock: Clock,
    idle_s: float,
    min_s: float = 0.0,
    cap: bool = True,
    until: Callable[[], bool] = lambda: False,
) -> None:
    """The loop of every stage: ``step`` says when it wants to run again (monotonic time,
    None: no wish); it runs then, when woken, and (``cap``) at least every ``idle_s``.

    A ledger that cannot be used (disk full, locked) is logged and tried again after
    LEDGER_RETRY_S; ``until`` ends the loop after a step (graceful shutdown).
    """
    while not until():
        wakeups.clear(stage)
        try:
            next_at = await step()
        except LeaseLostError as exc:  # a fenced write: the folder is another daemon's now
            log.warning("folder_lease_lost", stage=stage.value, error=str(exc))
            next_at = clock.monotonic() + LEDGER_RETRY_S
        except LedgerUnavailableError as exc:
            log.error("ledger_unavailable", stage=stage.value, error=str(exc))
            next_at = clock.monotonic() + LEDGER_RETRY_S
        if until():
            return
        delay_s = idle_s if next_at is None else max(min_s, next_at - clock.monotonic())
        await wakeups.sleep(stage, min(delay_s, idle_s) if cap else delay_s)
