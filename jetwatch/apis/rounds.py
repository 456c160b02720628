"""Answers read once per round: folders that share a job ask the API once for all of them.

The target registry checks every folder's target in one round; 200 folders on one Jet job
made 600 identical GETs every ``job_recheck_seconds``. Inside ``one_round()`` a client's
read-only answers are kept by key for the rest of that round, in that task and the tasks
it starts only (a context variable): a delivery's own GETs elsewhere stay fresh. Answers
are shared objects: callers read them, never change them. Failures are not kept.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Hashable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar, cast

T = TypeVar("T")

_ROUND: ContextVar[dict[Hashable, Any] | None] = ContextVar("jetwatch_round", default=None)


@contextlib.contextmanager
def one_round() -> Iterator[None]:
    """Within this block, ``once`` answers each key at most once."""
    token = _ROUND.set({})
    try:
        yield
    finally:
        _ROUND.reset(token)


async def once(key: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
    """``fetch()``'s answer, or the one it gave for ``key`` earlier in this round."""
    kept = _ROUND.get()
    if kept is None:
        return await fetch()
    if key in kept:
        return cast(T, kept[key])
    value = await fetch()
    kept[key] = value
    return value
