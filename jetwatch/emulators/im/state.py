"""Job configs and job runs the IM emulator keeps, and their JSON as seed 003 shows it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import uuid4

from jetwatch.emulators.im.auth import User

JsonDict = dict[str, Any]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def im_date(when: datetime | None = None) -> str:
    """A timestamp as seed 003 writes it: ``Apr 12, 2019 2:41:41 PM`` (locale-independent)."""
    t = when or datetime.now()
    hour = t.hour % 12 or 12
    return (
        f"{_MONTHS[t.month - 1]} {t.day}, {t.year} {hour}:{t:%M:%S} {'AM' if t.hour < 12 else 'PM'}"
    )


class RunStatus(StrEnum):
    """Statuses the emulator reports: QUEUED from the seed, the rest as issue 7 assumes."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@dataclass(slots=True)
class JobConfig:
    """A job config: what a run executes; inactive ones refuse runs."""

    config_id: str
    name: str
    description: str
    active: bool
    owner: User
    created: str
    last_modified: str
    last_modified_by: User
    runtime_config: JsonDict | None = None


@dataclass(slots=True)
class Run:
    """One job run and what it did; ``status`` may be any string (set by the side door)."""

    run_id: str
    config_id: str
    submitted_by: User
    variables: dict[str, str]
    scheduled: str
    status: str = RunStatus.QUEUED
    files: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    error_message: str | None = None
    started: str | None = None
    finished: str | None = None


class ImState:
    """Every job config and run, in creation order; mutated only on the event loop."""

    def __init__(self) -> None:
        self.configs: dict[str, JobConfig] = {}
        self.runs: dict[str, Run] = {}
        self._next_config = 40  # seed 003's example config has id "44"

    def add_config(self, name: str, description: str, active: bool, user: User) -> JobConfig:
        self._next_config += 1
        now = im_date()
        config = JobConfig(str(self._next_config), name, description, active, user, now, now, user)
        self.configs[config.config_id] = config
        return config

    def add_run(self, config: JobConfig, variables: dict[str, str], user: User) -> Run:
        run = Run(new_run_id(), config.config_id, user, variables, im_date())
        self.runs[run.run_id] = run
        return run

    def runs_of(self, config_id: str) -> list[Run]:
        """The config's runs, newest first."""
        return [r for r in reversed(self.runs.values()) if r.config_id == config_id]


def new_run_id() -> str:
    """A run id shaped like seed 003's (``3845bf5-6504-48dc-ab1e``): hyphenated hex."""
    return str(uuid4())


def user_json(base: str, user: User) -> JsonDict:
    return {"id": user.user_id, "name": user.username, "href": f"{base}/api/users/{user.user_id}"}


def config_ref_json(base: str, config: JobConfig) -> JsonDict:
    return {"id": config.config_id, "name": config.name, "href": config_href(base, config)}


def config_href(base: str, config: JobConfig) -> str:
    return f"{base}/api/jobconfigs/{config.config_id}"


def config_json(base: str, config: JobConfig) -> JsonDict:
    """Seed 003 steps 2 and 4."""
    body: JsonDict = {
        "id": config.config_id,
        "active": config.active,
        "name": config.name,
        "description": config.description,
        "href": config_href(base, config),
        "user": user_json(base, config.owner),
        "created": config.created,
        "createdByUser": user_json(base, config.owner),
        "lastModified": config.last_modified,
        "lastModifiedByUser": user_json(base, config.last_modified_by),
    }
    if config.runtime_config is not None:
        body["runtimeConfig"] = dict(config.runtime_config)
    return body


def run_json(base: str, run: Run, config: JobConfig) -> JsonDict:
    """Seed 003 step 5, plus assumed ``variables``, ``started``, ``finished``, ``errorMessage``."""
    body: JsonDict = {
        "href": f"{base}/api/jobs/{run.run_id}",
        "id": run.run_id,
        "scheduled": run.scheduled,
        "status": str(run.status),
        "finalDestinationId": "1",
        "jobConfig": config_ref_json(base, config),
        "submittedByUser": user_json(base, run.submitted_by),
        "variables": dict(run.variables),
    }
    for key, value in (
        ("started", run.started),
        ("finished", run.finished),
        ("errorMessage", run.error_message),
    ):
        if value is not None:
            body[key] = value
    return body


def received_json(run: Run) -> JsonDict:
    """What ``/_emulator/runs`` shows: the run with the files it was given and wrote."""
    return {
        "id": run.run_id,
        "jobConfigId": run.config_id,
        "status": str(run.status),
        "submittedBy": run.submitted_by.username,
        "variables": dict(run.variables),
        "files": list(run.files),
        "outputs": list(run.outputs),
        "errorMessage": run.error_message,
    }
