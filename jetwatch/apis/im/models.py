"""Pydantic models of the Integration Manager wire format (seed 003), parsed leniently."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator

from jetwatch.apis.jet.models import WireModel
from jetwatch.errors import ProtocolError


class RunStatus(StrEnum):
    """Job run statuses: QUEUED is in the seed; the others are assumed (issue 7)."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


BEARER_SCHEME = "bearer"
LIST_KEYS = ("items", "content", "data", "jobs", "jobconfigs", "results")


class LoginAnswer(BaseModel):
    """``POST /api/login`` (and the assumed ``/api/login/refresh``) answer, snake_case."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    access_token: SecretStr = Field(min_length=1)
    refresh_token: SecretStr | None = None
    token_type: str = BEARER_SCHEME
    expires_in: float = 36000.0


# Same conventions as the Jet wire models: camelCase, unknown fields ignored, ids as strings.
ImModel = WireModel


class Ref(ImModel):
    """A reference to another record: ``{"id", "name", "href"}``."""

    id: str
    name: str = ""
    href: str | None = None


class JobConfig(ImModel):
    """A job config: what a run executes; ``active`` false refuses runs."""

    id: str
    name: str = ""
    description: str = ""
    active: bool = True
    href: str | None = None
    runtime_config: dict[str, Any] | None = None


def _variables_from(value: Any) -> Any:
    # Accept {"NAME": "value"} and [{"name": "NAME", "value": "value"}]; values as strings.
    if value is None:
        return None
    if isinstance(value, list):
        pairs = [(i.get("name"), i.get("value")) for i in value if isinstance(i, dict)]
        value = {k: v for k, v in pairs if isinstance(k, str)}
    if isinstance(value, dict):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    return value


class JobRun(ImModel):
    """A job run ("job" in the API): ``POST .../jobs`` and ``GET /api/jobs/{id}`` answers."""

    id: str
    href: str | None = None
    status: str | None = None
    scheduled: str | None = None
    job_config: Ref | None = None
    submitted_by_user: Ref | None = None
    variables: dict[str, str] | None = None
    # Not in the seed: where a failed run says why. Several spellings are accepted.
    error_message: str | None = Field(
        default=None,
        validation_alias=AliasChoices("errorMessage", "message", "statusMessage", "error"),
    )

    _normalise_variables = field_validator("variables", mode="before")(_variables_from)

    @field_validator("error_message", mode="before")
    @classmethod
    def _error_text(cls, value: Any) -> Any:
        if isinstance(value, dict):  # {"message": ...} objects
            return value.get("message") or value.get("reason")
        return value


def list_items(body: Any) -> list[Any]:
    """The records of a list answer: a bare array or an object holding one under a known key."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in LIST_KEYS:
            if isinstance(body.get(key), list):
                items: list[Any] = body[key]
                return items
    raise ProtocolError("list answer is neither an array nor an object with items")
