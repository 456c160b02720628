"""The ``Target`` protocol: what deliver and track need from any transfer back end.

A target takes one batch of complete local files, starts whatever the back end calls a
submission (a Jet delivery, an Integration Manager job run, a JetStream transfer) and
returns an opaque *handle* string, which the ledger keeps in its ``delivery_id`` column.
``poll`` turns a handle into a :class:`Progress`; ``find_submission`` answers the in-doubt
question after a crash ("did the back end receive this batch?") as a :class:`Lookup`:
found (adopt it), not received (submit again), or unproven — the Jet API cannot be asked —
with the work in flight that may be it, so the batch is submitted again only once that is
over (``pipeline/in_doubt.py``).

Errors are the tree of :mod:`jetwatch.errors`, the same for every target; the class says
what to do:

- ``TransportError``: retryable (connection, timeout, 429, 5xx); nothing was submitted.
- ``OutcomeUnknownError``: the submission may have happened; resolve it with
  ``find_submission`` before submitting again, never re-send blindly.
- ``ProtocolError``: the back end answered something its contract does not allow.
- ``RejectedError``: the back end said no to these objects (bisect the batch); its
  subclasses ``PausedError`` (destination paused or inactive: hold the batch),
  ``NotFoundError`` (job, job config or handle unknown), ``ForbiddenError`` and
  ``AuthError`` (credentials refused even after a fresh login).

``ident`` is what ``check`` resolved the destination to (a Jet job id, an IM job config id;
the ledger keeps it in its ``job_id`` column). ``submit``, ``poll`` and ``find_submission``
take the ident a batch was submitted under, so a batch stays with its job even when the
folder is later pointed elsewhere; None means "the one resolved now".

``check`` raises ``TransportError``, ``ProtocolError`` or ``AuthError`` when the
back end cannot be asked at all; an answer about the destination (missing, paused,
forbidden) comes back as a :class:`TargetStatus` with ``problem`` or ``paused`` set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from jetwatch.domain.states import HoldReason


@dataclass(frozen=True, slots=True)
class SubmitObject:
    """One complete file of a batch: its posix path relative to the folder, where it is, size."""

    relpath: str
    local_path: str  # a string: one per file of every batch, and a Path costs 2 us to build
    size: int


@dataclass(frozen=True, slots=True)
class TargetStatus:
    """Whether the destination can take batches now; ``ident`` is the resolved job/config id."""

    ready: bool
    paused: bool = False
    problem: str = ""  # why batches cannot be sent ("" when they can, or only paused)
    ident: str | None = None
    hold: HoldReason = HoldReason.UNUSABLE  # what a batch held for ``problem`` shows
    problem_key: str = ""  # the folder key ``problem`` is about ("": what the folder names)


@dataclass(frozen=True, slots=True)
class Progress:
    """What one submission looks like now; ``done`` with ``failed`` False means success."""

    done: bool
    failed: bool
    state: str
    transferred: int = 0
    skipped: int = 0
    failed_count: int = 0
    bytes_done: int = 0  # as the back end reports it; 0 when it reports none
    detail: str = ""  # why it failed, for logs and status
    bytes_skipped: int = 0  # bytes the back end found already there
    job_paused: bool = False  # failed while its job (destination) is paused: not the files'
    marks: tuple[object, ...] = ()  # other signs of life (Jet's lastModifiedOn): stall checks


@dataclass(frozen=True, slots=True)
class Lookup:
    """What a target can tell of an in-doubt submission (see the module docstring).

    ``in_flight`` names the target's work in progress that may be this submission (for Jet:
    transfers of deliveries jetwatch does not know); ``grace_s`` is how long a submission
    may take to show as in flight, ``max_wait_s`` the bound on waiting for it to end.
    """

    handle: str | None = None
    absent: bool = False
    in_flight: frozenset[str] = frozenset()
    grace_s: float = 0.0
    max_wait_s: float = 0.0

    @classmethod
    def found(cls, handle: str) -> Lookup:
        return cls(handle=handle)

    @classmethod
    def not_received(cls) -> Lookup:
        return cls(absent=True)

    @classmethod
    def unproven(cls, in_flight: frozenset[str], grace_s: float, max_wait_s: float) -> Lookup:
        return cls(in_flight=in_flight, grace_s=grace_s, max_wait_s=max_wait_s)


@runtime_checkable
class Target(Protocol):
    """A transfer back end behind one small interface (see the module docstring)."""

    @property
    def kind(self) -> str:
        """The ``[[folders]] target`` value this target serves (see ``jetwatch.targets``)."""
        ...

    async def check(self) -> TargetStatus:
        """Resolve the destination and say whether it takes batches now."""
        ...

    async def submit(self, objects: Sequence[SubmitObject], *, ident: str | None = None) -> str:
        """Submit one batch, at most once; return its handle."""
        ...

    async def poll(
        self, handle: str, objects: int, age_s: float, *, ident: str | None = None
    ) -> Progress:
        """The progress of a submission of ``objects`` files, ``age_s`` seconds after submit.

        A submission older than the target's timeout without a terminal state is reported
        done and failed. Raises ``NotFoundError`` when the back end no longer knows it.
        """
        ...

    async def find_submission(
        self,
        objects: Sequence[SubmitObject],
        known_handles: set[str],
        *,
        ident: str | None = None,
        since: float | None = None,
    ) -> Lookup:
        """After a crash: a submission with exactly these objects that is not one of
        ``known_handles`` (made no earlier than ``since``, epoch s, when the back end says
        when it was made), or whether its absence is proven (see :class:`Lookup`)."""
        ...

    async def is_moving(self, handle: str, *, ident: str | None = None) -> bool:
        """Whether the back end shows the submission's work in progress right now (True when
        it cannot tell): a submission that shows no progress is declared stalled only if not."""
        ...

    async def aclose(self) -> None:
        """Release the client, session or connection the target holds."""
        ...


def batch_token(objects: Sequence[SubmitObject]) -> str:
    """A short deterministic name of a batch's content (relative paths and sizes).

    The same files give the same token, so a crashed submission can be recognised from the
    back end's records alone; ``known_handles`` tells an earlier attempt apart.
    """
    digest = hashlib.sha256()
    for relpath, size in sorted((o.relpath, o.size) for o in objects):
        digest.update(f"{relpath}\0{size}\n".encode())
    return "jw-" + digest.hexdigest()[:20]
