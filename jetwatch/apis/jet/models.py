"""Pydantic models of the Jet API wire format, parsed leniently (unknown fields and states pass)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel


class DeliveryState(StrEnum):
    """Delivery states seen in Signiant's webhook examples; others are kept as plain strings."""

    CREATED = "CREATED"
    QUEUED = "QUEUED"
    SCHEDULED = "SCHEDULED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class TransferState(StrEnum):
    """Transfer states from the docs; others are kept as plain strings."""

    SCHEDULED = "SCHEDULED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class JobStatus(StrEnum):
    """Job statuses from the docs; others are kept as plain strings."""

    READY = "READY"
    IN_PROGRESS = "IN_PROGRESS"
    ERROR = "ERROR"
    PAUSED = "PAUSED"


class TriggerType(StrEnum):
    """Job trigger types; a live dump showed MANUAL next to the documented MANUAL_START."""

    HOT_FOLDER = "HOT_FOLDER"
    SCHEDULE = "SCHEDULE"
    MANUAL_START = "MANUAL_START"
    MANUAL = "MANUAL"


# A job with one of these starts by itself: jetwatch needs a manual one (JET-API.md).
AUTOMATIC_TRIGGERS = frozenset({TriggerType.HOT_FOLDER, TriggerType.SCHEDULE})


def _lenient(enum_type: type[StrEnum]) -> Callable[[str | None], str | None]:
    """A validator mapping known values to ``enum_type`` members and keeping unknown strings."""
    known: dict[str, str] = {member.value: member for member in enum_type}

    def convert(value: str | None) -> str | None:
        return None if value is None else known.get(value, value)

    return convert


DeliveryStateValue = Annotated[str | None, AfterValidator(_lenient(DeliveryState))]
TransferStateValue = Annotated[str | None, AfterValidator(_lenient(TransferState))]
JobStatusValue = Annotated[str | None, AfterValidator(_lenient(JobStatus))]


class WireModel(BaseModel):
    """Base of the camelCase wire models: unknown fields ignored, snake_case names accepted."""

    model_config = ConfigDict(
        extra="ignore",
        populate_by_name=True,
        alias_generator=to_camel,
        frozen=True,
        coerce_numbers_to_str=True,
    )


class Endpoint(WireModel):
    """A Jet endpoint (a host running the Signiant agent), created in the console."""

    endpoint_id: str
    name: str | None = None


class StorageProfile(WireModel):
    """A folder on an endpoint that jobs use as source or destination."""

    storage_profile_id: str
    name: str | None = None
    url: str | None = None
    endpoint_id: str | None = None


class Trigger(WireModel):
    """A job trigger; only its ``type`` matters to jetwatch."""

    type: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


def _triggers_from(value: Any) -> Any:
    # Some dumps list trigger types as bare strings; treat them as {"type": ...}.
    if isinstance(value, list):
        return [{"type": item} if isinstance(item, str) else item for item in value]
    return [] if value is None else value


class ProfileRef(WireModel):
    """A reference to a storage profile inside a job action."""

    storage_profile_id: str | None = None


class ActionData(WireModel):
    """Source and destination of a TRANSFER action."""

    source: ProfileRef | None = None
    destination: ProfileRef | None = None
    transfer_options: dict[str, Any] | None = None

    @property
    def follows_growing(self) -> bool:
        """``transferOptions.areGrowingObjects``: Jet follows a growing object until idle."""
        options = self.transfer_options or {}
        return options.get("areGrowingObjects") is True


class JobOptions(WireModel):
    """``options`` of a job; a real dump shows both flags true on every job, so a job that
    does not say is taken to clear its backlog."""

    clear_backlog_on_pause: bool = True
    clear_backlog_on_stop: bool = True


class JobAction(WireModel):
    """One job action (jetwatch uses the first, a TRANSFER)."""

    type: str = ""
    data: ActionData = Field(default_factory=ActionData)
    triggers: list[Trigger] = Field(default_factory=list)

    _normalise_triggers = field_validator("triggers", mode="before")(_triggers_from)


class Job(WireModel):
    """A Jet job; ``is_manual`` and ``paused`` are read from whichever fields the API sends."""

    job_id: str
    name: str = Field(default="", validation_alias=AliasChoices("name", "jobName"))
    status: JobStatusValue = None
    paused: bool = False
    error_code: str | None = None
    trigger_types: list[str] = Field(default_factory=list)
    triggers: list[Trigger] = Field(default_factory=list)
    actions: list[JobAction] = Field(default_factory=list)
    options: JobOptions = Field(default_factory=JobOptions)
    # None when the answer has no such field (the real API: JET-API.md); a list only where
    # an API does show a job's deliveries (seed 002 says it does).
    delivery_ids: list[str] | None = Field(
        default=None,
        validation_alias=AliasChoices("deliveryIds", "deliveries", "delivery_ids"),
    )

    _normalise_triggers = field_validator("triggers", mode="before")(_triggers_from)

    @model_validator(mode="before")
    @classmethod
    def _paused_from_status(cls, data: Any) -> Any:
        if isinstance(data, dict):
            paused = bool(data.get("paused")) or data.get("status") == JobStatus.PAUSED
            data = {**data, "paused": paused}
        return data

    @field_validator("trigger_types", mode="before")
    @classmethod
    def _trigger_types_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [value]
        return [] if value is None else value

    @field_validator("delivery_ids", mode="before")
    @classmethod
    def _delivery_ids_from(cls, value: Any) -> Any:
        # The docs say a job "shows" its deliveries without a shape: accept ids or objects.
        if not isinstance(value, list):
            return value
        ids: list[Any] = []
        for item in value:
            if isinstance(item, dict):
                found = item.get("deliveryId", item.get("id"))
                if found is not None:
                    ids.append(found)
            else:
                ids.append(item)
        return ids

    @property
    def is_manual(self) -> bool:
        """True unless a HOT_FOLDER or SCHEDULE trigger (job-level, type list or per action)
        is present: ``triggers: []``, ``triggerTypes: ["MANUAL"]`` and no triggers are manual."""
        types = {kind.upper() for kind in self.trigger_types}
        types.update(trigger.type.upper() for trigger in self.triggers)
        types.update(trigger.type.upper() for action in self.actions for trigger in action.triggers)
        return not AUTOMATIC_TRIGGERS & types

    @property
    def source_profile_id(self) -> str | None:
        """Source storage profile of the first action, if any."""
        source = self.actions[0].data.source if self.actions else None
        return source.storage_profile_id if source else None

    @property
    def follows_growing(self) -> bool:
        """The first action follows growing objects (``areGrowingObjects``)."""
        return bool(self.actions) and self.actions[0].data.follows_growing


class DeliveryObject(WireModel):
    """A file or folder in a delivery, relative to the source profile root (starts with /)."""

    relative_path: str
    size_in_bytes: int | None = None
    is_directory: bool | None = None


class Counts(WireModel):
    """An object count and its bytes (transferred, skipped or failed)."""

    count: int = 0
    size_bytes: int = Field(default=0, alias="bytes")


class Progress(WireModel):
    """Transferred / skipped / failed counts of a delivery or a transfer."""

    transferred: Counts = Field(default_factory=Counts)
    skipped: Counts = Field(default_factory=Counts)
    failed: Counts = Field(default_factory=Counts)


class TransferRef(WireModel):
    """A transfer belonging to a delivery."""

    transfer_id: str


class DeliveryMetadata(WireModel):
    """Where a delivery belongs."""

    job_id: str | None = None
    action_id: str | None = None
    base_url: str | None = None


class Delivery(WireModel):
    """A delivery: the POST answer (id and objects) or the GET answer (state and counts)."""

    delivery_id: str
    state: DeliveryStateValue = None
    created_on: datetime | None = None
    last_modified_on: datetime | None = None
    last_event_time: datetime | None = None
    summary: Progress = Field(
        default_factory=Progress,
        validation_alias=AliasChoices("deliverySummary", "summary"),
    )
    transfers: list[TransferRef] = Field(default_factory=list)
    # The POST answer echoes them (seed 002); a GET answer has none (seed 002) unless an API
    # does show them: None then.
    objects: list[DeliveryObject] | None = None
    metadata: DeliveryMetadata | None = None

    @field_validator("transfers", mode="before")
    @classmethod
    def _transfer_refs(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"transferId": item} if isinstance(item, str) else item for item in value]
        return [] if value is None else value

    @property
    def transfer_ids(self) -> list[str]:
        """Ids of the delivery's transfers, in the order the API lists them."""
        return [ref.transfer_id for ref in self.transfers]


class TransferError(WireModel):
    """Why a transfer failed."""

    code: str | None = None
    message: str | None = None
    reason: str | None = None
    error_handling_policy: str | None = None


class TransferMetadata(WireModel):
    """Transfer bookkeeping; ``is_retry`` marks Jet's own retries."""

    is_retry: bool = False
    job_id: str | None = None
    delivery_id: str | None = None
    execution_id: str | None = None
    delivery_batch_id: str | None = None
    disable_retry: bool | None = None


class Transfer(WireModel):
    """One transfer of a delivery (or an item of the in-progress listing, whose metadata
    carries no ``deliveryId``: GET the transfer for it)."""

    transfer_id: str
    state: TransferStateValue = None
    created_on: datetime | None = None
    transfer_progress: Progress = Field(default_factory=Progress)
    error: TransferError | None = None
    metadata: TransferMetadata = Field(default_factory=TransferMetadata)

    @property
    def is_retry(self) -> bool:
        """True when Jet started this transfer to retry an earlier one."""
        return self.metadata.is_retry


class JobFile(WireModel):
    """A per-file record (``JobFilesResponse`` of a Swagger copy; the path is unconfirmed)."""

    transfer_id: str | None = None
    state: str | None = None
    url: str | None = None
    size_in_bytes: int | None = None
