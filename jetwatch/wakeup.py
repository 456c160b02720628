"""Loops sleep until a timer runs out or someone wakes them: a lost wake-up costs latency only."""

from __future__ import annotations

import asyncio


async def sleep_or_wake(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait for ``event`` at most ``timeout_s``; True when it was set (then clear it)."""
    try:
        await asyncio.wait_for(event.wait(), max(0.0, timeout_s))
    except TimeoutError:
        return False
    event.clear()
    return True
