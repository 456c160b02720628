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
    delivery_ids: list[str] = field(default_factory=list)

    @property
    def action_id(self) -> str:
        return str(self.actions[0].get("actionId", ""))

    @property
    def trigger_types(self) -> list[str]:
        if not self.triggers:
            return ["MANUAL_START"]
        return list(dict.fromkeys(str(t.get("type")) for t in self.triggers))

    @property
    def is_manual(self) -> bool:
        return "HOT_FOLDER" not in self.trigger_types


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

    def to_json(self) -> JsonDict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: JsonDict) -> Delivery:
        values = dict(data)
        values["state"] = DeliveryState(values["state"])
        return cls(**values)
