"""Records the emulator keeps (endpoints, profiles, jobs, deliveries, transfers) and their JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from uuid import uuid4

JsonDict = dict[str, Any]


def new_id() -> str:
    """A fresh identifier shaped like Jet's (UUID4)."""
    return str(uuid4())


def iso_now() -> str:
    """Current UTC time as Jet writes it: ``2025-09-15T18:29:01.889Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def file_url_path(url: str) -> Path | None:
    """The absolute folder of a ``file:///abs/path`` URL, or None when it is not one."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost") or parts.query:
        return None
    path = unquote(parts.path)
    if not path.startswith("/") or "\x00" in path:
        return None
    return Path(path)


class DeliveryState(StrEnum):
    """States the emulator reports for a delivery (a subset of the ones Jet documents)."""

    CREATED = "CREATED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class TransferState(StrEnum):
    """States the emulator reports for a transfer."""

    SCHEDULED = "SCHEDULED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"  # its work was dropped (a paused job cleared its backlog)


class ObjectOutcome(StrEnum):
    """What became of one posted object (``/_emulator/deliveries``); a folder object takes
    the worst of its files: failed, else transferred, else skipped."""

    TRANSFERRED = "transferred"
    SKIPPED = "skipped"
    FAILED = "failed"


# Every job of a real GET /v1/jobs dump carries both, true (JET-API.md).
DEFAULT_JOB_OPTIONS: JsonDict = {"clearBacklogOnPause": True, "clearBacklogOnStop": True}
DEFAULT_GROWING_IDLE_S = 30.0


TERMINAL_DELIVERY_STATES = frozenset({DeliveryState.COMPLETED, DeliveryState.FAILED})


@dataclass(slots=True)
class Tally:
    """A count of objects and their bytes."""

    count: int = 0
    bytes: int = 0

    def add(self, other: Tally) -> None:
        self.count += other.count
        self.bytes += other.bytes


@dataclass(slots=True)
class Progress:
    """Transferred/skipped/failed tallies: ``deliverySummary`` and ``transferProgress``."""

    transferred: Tally = field(default_factory=Tally)
    skipped: Tally = field(default_factory=Tally)
    failed: Tally = field(default_factory=Tally)

    def add(self, other: Progress) -> None:
        self.transferred.add(other.transferred)
        self.skipped.add(other.skipped)
        self.failed.add(other.failed)

    def to_json(self) -> JsonDict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: JsonDict) -> Progress:
        return cls(**{key: Tally(**data[key]) for key in ("transferred", "skipped", "failed")})


@dataclass(frozen=True, slots=True)
class TransferError:
    """Why a transfer failed: ``error`` of the transfer resource."""

    code: str
    message: str
    reason: str


@dataclass(slots=True)
class Endpoint:
    """A Jet endpoint; in Jet they are made in the console, so the emulator starts with one."""

    endpoint_id: str
    name: str
    created_on: str


@dataclass(slots=True)
class Profile:
    """A storage profile: a folder on the endpoint, given as a ``file://`` URL."""

    profile_id: str
    name: str
    endpoint_id: str
    url: str
    created_on: str
    extra: JsonDict = field(default_factory=dict)

    @property
    def root(self) -> Path:
        path = file_url_path(self.url)
        if path is None:  # validated on creation; a hand-edited state file may still lie
            raise ValueError(f"storage profile {self.profile_id} has a bad url")
        return path


@dataclass(slots=True)
class Job:
    """A transfer job; ``actions``/``triggers`` are kept as posted so they can be echoed."""

    job_id: str
    name: str
    source_profile_id: str
    dest_profile_id: str
    actions: list[JsonDict]
    triggers: list[JsonDict] | None
    created_on: str
    last_modified_on: str
    paused: bool = False
    extra: JsonDict = field(default_factory=dict)
    # Kept for the emulator's own bookkeeping; served only with --assume-job-deliveries.
    delivery_ids: list[str] = field(default_factory=list)
    options: JsonDict = field(default_factory=lambda: dict(DEFAULT_JOB_OPTIONS))

    @property
    def action_id(self) -> str:
        return str(self.actions[0].get("actionId", ""))

    @property
    def trigger_types(self) -> list[str]:
        """A real dump shows ``[]`` for manual jobs (never MANUAL_START)."""
        return list(dict.fromkeys(str(t.get("type")) for t in self.triggers or []))

    @property
    def is_manual(self) -> bool:
        """JET-API.md: manual unless a HOT_FOLDER or SCHEDULE trigger is present."""
        return not {"HOT_FOLDER", "SCHEDULE"} & set(self.trigger_types)

    @property
    def clears_backlog_on_pause(self) -> bool:
        return bool(self.options.get("clearBacklogOnPause", True))

    @property
    def transfer_options(self) -> JsonDict:
        data = self.actions[0].get("data")
        options = data.get("transferOptions") if isinstance(data, dict) else None
        return options if isinstance(options, dict) else {}

    @property
    def growing_idle_s(self) -> float | None:
        """How long a growing object must be idle before it is finished; None: the job does
        not follow growing objects (it copies what exists when the transfer runs)."""
        options = self.transfer_options
        if not options.get("areGrowingObjects"):
            return None
        growing = options.get("growingObjects")
        idle = growing.get("growingIdleTimeoutInSeconds") if isinstance(growing, dict) else None
        if isinstance(idle, bool) or not isinstance(idle, int | float) or idle < 0:
            return DEFAULT_GROWING_IDLE_S
        return float(idle)


@dataclass(slots=True)
class Transfer:
    """One batch of a delivery's objects, copied by one task."""

    transfer_id: str
    job_id: str
    delivery_id: str
    execution_id: str
    batch_id: str
    objects: list[JsonDict]
    created_on: str
    last_modified_on: str
    state: TransferState = TransferState.SCHEDULED
    progress: Progress = field(default_factory=Progress)
    error: TransferError | None = None
    first_index: int = 0  # where ``objects`` start in the delivery's objects
    # Per-file records (``GET /v1/jobs/{id}/files``, served only with --assume-job-files).
    files: list[JsonDict] = field(default_factory=list)

    def to_json(self) -> JsonDict:
        data = dataclasses.asdict(self)
        data["error"] = None if self.error is None else dataclasses.asdict(self.error)
        return data

    @classmethod
    def from_json(cls, data: JsonDict) -> Transfer:
        values = dict(data)
        values["state"] = TransferState(values["state"])
        values["progress"] = Progress.from_json(values["progress"])
        values["error"] = None if values.get("error") is None else TransferError(**values["error"])
        return cls(**values)


@dataclass(slots=True)
class Delivery:
    """A request to copy objects of a manual job; owns one or more transfers."""

    delivery_id: str
    job_id: str
    action_id: str
    source_profile_id: str
    dest_profile_id: str
    objects: list[JsonDict]
    transfer_ids: list[str]
    created_on: str
    last_modified_on: str
    last_event_time: str
    state: DeliveryState = DeliveryState.CREATED
    outcomes: list[str] = field(default_factory=list)  # per object: ObjectOutcome or ""
    abandoned: bool = False  # its job dropped its work: it never moves again

    def __post_init__(self) -> None:
        if len(self.outcomes) != len(self.objects):
            self.outcomes = [""] * len(self.objects)

    def to_json(self) -> JsonDict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: JsonDict) -> Delivery:
        values = dict(data)
        values["state"] = DeliveryState(values["state"])
        return cls(**values)
