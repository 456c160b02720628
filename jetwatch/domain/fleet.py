"""Folder ownership by lease: who a daemon is, what a lease round grants, the fleet as seen.

With one host (SQLite) the ledger lock already makes the daemon the owner of every folder;
with a shared ledger (PostgreSQL) each folder has a lease row with an owner token and an
expiry taken from the database server's clock. These are the values both sides pass, and
the pure rules of timing and sharing.
"""

from __future__ import annotations

import math
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from jetwatch import __version__

RENEW_FRACTION = 0.2  # a lease is renewed every lease_s / 5
SAFETY_FRACTION = 0.2  # an owner stops acting this share of lease_s before it could expire
MIN_SAFETY_S = 1.0


@dataclass(frozen=True, slots=True)
class Member:
    """One daemon process: the token its leases carry and who it is for people."""

    token: str
    host: str
    pid: int
    version: str

    @classmethod
    def this_process(cls) -> Member:
        """A fresh token for this process (a restart is a new member)."""
        return cls(uuid.uuid4().hex, socket.gethostname(), os.getpid(), __version__)

    @property
    def name(self) -> str:
        return f"{self.host}:{self.pid}"


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """What one lease round left this daemon with.

    ``owned``: folders whose lease it holds now; ``valid_s``: how long after the round was
    *sent* the leases hold at the least (None: for ever, one host); ``surplus``: owned
    folders above its fair share while another live member owns fewer; ``members``: live
    members on the ledger.
    """

    owned: frozenset[str]
    valid_s: float | None
    members: int = 1
    surplus: int = 0


@dataclass(frozen=True, slots=True)
class FleetMember:
    """A daemon as the ledger knows it."""

    host: str
    pid: int
    version: str
    started_at: float
    heartbeat_age_s: float
    alive: bool
    folders: tuple[str, ...]
    token: str = ""


@dataclass(frozen=True, slots=True)
class FolderOwner:
    """Which daemon holds a folder's lease, and for how much longer (negative: lapsed)."""

    folder: str
    host: str
    pid: int
    expires_in_s: float
    token: str = ""


@dataclass(frozen=True, slots=True)
class Fleet:
    """Every daemon on the ledger and every folder's owner; ``shared``: a multi-host ledger."""

    shared: bool
    members: tuple[FleetMember, ...] = ()
    owners: tuple[FolderOwner, ...] = field(default=())


def fair_share(folders: int, members: int) -> int:
    """How many of ``folders`` one of ``members`` live daemons should own."""
    return math.ceil(folders / max(1, members))


def renew_interval_s(lease_s: float) -> float:
    """How often a lease round runs: well before a lease lapses."""
    return lease_s * RENEW_FRACTION


def acting_window_s(lease_s: float) -> float:
    """How long after a round was sent its owner may still act: stops before expiry can come."""
    return max(0.0, lease_s - max(MIN_SAFETY_S, lease_s * SAFETY_FRACTION))


class Acting(Protocol):
    """What the stages ask before they act on a folder (see ``pipeline.ownership``)."""

    def may_act(self, folder: str) -> bool:
        """This daemon holds the folder's lease and may act on it now."""
        ...

    def owned_since(self, folder: str) -> float:
        """Monotonic time this daemon took the folder over (-inf: it always had it)."""
        ...

    def acting(self, folder: str) -> AbstractContextManager[bool]:
        """Hold while acting (a POST): a hand-over waits for it; yields ``may_act``."""
        ...


class OwnsEverything:
    """One daemon, one ledger: the ledger lock makes it the owner of every folder."""

    def may_act(self, folder: str) -> bool:
        return True

    def owned_since(self, folder: str) -> float:
        return -math.inf

    @contextmanager
    def acting(self, folder: str) -> Iterator[bool]:
        yield True
