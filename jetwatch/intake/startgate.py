"""Folders started together begin watching together.

A daemon starting 200 folders used to let the first ones scan while the rest still read
their ledger rows: the scans took the worker threads and the GIL, the reads behind them
crawled, and the folders reached their watchers one at a time over a minute (too far
apart to share one, see watchhub.py). With a gate every folder of the wave reads its
rows first (200 reads of 5,000 rows: 2 s when nothing else runs), then all go on.
"""

from __future__ import annotations

import asyncio


class StartGate:
    """Opens once ``expected`` intakes have arrived (an intake that fails arrives too)."""

    def __init__(self, expected: int) -> None:
        self._left = expected
        self._open = asyncio.Event()
        if expected <= 0:
            self._open.set()

    def arrive(self) -> None:
        self._left -= 1
        if self._left <= 0:
            self._open.set()

    async def passed(self) -> None:
        await self._open.wait()
