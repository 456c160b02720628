"""Checks request bodies against the contract; a failed check is an ErrorAnswer (400 + message)."""

from __future__ import annotations

import copy
from collections.abc import Container, Mapping
from dataclasses import dataclass

from jetwatch.emulators.jet.model import DEFAULT_JOB_OPTIONS, JsonDict, file_url_path, new_id
from jetwatch.errors import JetwatchError

MAX_PAGE_LIMIT = 100  # JET-API.md: jobs searches page with limit ≤ 100


class ErrorAnswer(JetwatchError):
    """An HTTP error answer, sent as ``{"message": ...}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def bad_request(message: str) -> ErrorAnswer:
    return ErrorAnswer(400, message)


def _object(value: object, what: str) -> JsonDict:
    if not isinstance(value, dict):
        raise bad_request(f"{what} must be a JSON object")
    return value


def _text(data: JsonDict, key: str, what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"{what}.{key} must be a non-empty string")
    return value


def _profile_ref(data: JsonDict, key: str, what: str) -> str:
    ref = _object(data.get(key), f"{what}.{key}")
    return _text(ref, "storageProfileId", f"{what}.{key}")


@dataclass(frozen=True, slots=True)
class NewProfile:
    """A valid ``POST /v1/storageProfiles`` body."""

    name: str
    endpoint_id: str
    url: str
    extra: JsonDict


def parse_profile(body: object, endpoint_ids: Container[str]) -> NewProfile:
    """Seed 000: ``{"endpointId", "url": "file:///path/to/folder", "name"}``."""
    data = _object(body, "body")
    endpoint_id = _text(data, "endpointId", "body")
    if endpoint_id not in endpoint_ids:
        raise bad_request(f"unknown endpointId {endpoint_id!r}")
    url = _text(data, "url", "body")
    if file_url_path(url) is None:
        raise bad_request("body.url must be a file:///absolute/path URL")
    name = _text(data, "name", "body")
    extra = {k: v for k, v in data.items() if k not in ("endpointId", "url", "name")}
    return NewProfile(name, endpoint_id, url, extra)


@dataclass(frozen=True, slots=True)
class NewJob:
    """A valid ``POST /v1/jobs`` body; ``actions`` carry an ``actionId`` each."""

    name: str
    source_profile_id: str
    dest_profile_id: str
    actions: list[JsonDict]
    triggers: list[JsonDict] | None
    paused: bool
    extra: JsonDict
    options: JsonDict


_JOB_KEYS = frozenset({"name", "jobName", "actions", "triggers", "paused", "options"})
_BACKLOG_KEYS = ("clearBacklogOnPause", "clearBacklogOnStop")


def parse_job(body: object, profile_ids: Container[str]) -> NewJob:
    """Seeds 000-002: one TRANSFER action between two known profiles, optional triggers."""
    data = _object(body, "body")
    name = data.get("name", data.get("jobName"))
    if not isinstance(name, str) or not name.strip():
        raise bad_request("body.name must be a non-empty string")
    actions = data.get("actions")
    if not isinstance(actions, list) or not actions:
        raise bad_request("body.actions must be a non-empty list")
    action = _object(actions[0], "actions[0]")
    if action.get("type") != "TRANSFER":
        raise bad_request("actions[0].type must be TRANSFER")
    action_data = _object(action.get("data"), "actions[0].data")
    source_id = _profile_ref(action_data, "source", "actions[0].data")
    dest_id = _profile_ref(action_data, "destination", "actions[0].data")
    for profile_id in (source_id, dest_id):
        if profile_id not in profile_ids:
            raise bad_request(f"unknown storageProfileId {profile_id!r}")
    # Seed 000 puts triggers inside the action; accept them at the top level too.
    triggers = _parse_triggers(action.get("triggers", data.get("triggers")), source_id)
    paused = data.get("paused", False)
    if not isinstance(paused, bool):
        raise bad_request("body.paused must be a boolean")
    echoed = copy.deepcopy(actions)
    for item in echoed:
        if isinstance(item, dict):
            item.setdefault("actionId", new_id())
    extra = {k: v for k, v in data.items() if k not in _JOB_KEYS}
    options = {**DEFAULT_JOB_OPTIONS, **_job_options(data.get("options", {}))}
    return NewJob(name, source_id, dest_id, echoed, triggers, paused, extra, options)


def _job_options(value: object) -> JsonDict:
    """``options``: the clearBacklog flags must be booleans; other keys are kept as given."""
    options = _object(value, "body.options")
    for key in _BACKLOG_KEYS:
        if key in options and not isinstance(options[key], bool):
            raise bad_request(f"body.options.{key} must be a boolean")
    return options


def _parse_triggers(value: object, source_id: str) -> list[JsonDict] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise bad_request("triggers must be a list")
    triggers = [_object(item, "triggers[]") for item in value]
    for trigger in triggers:
        kind = trigger.get("type")
        if not isinstance(kind, str) or not kind:
            raise bad_request("triggers[].type must be a non-empty string")
        if kind == "HOT_FOLDER":
            trigger_data = _object(trigger.get("data"), "triggers[].data")
            if _profile_ref(trigger_data, "source", "triggers[].data") != source_id:
                raise bad_request("a HOT_FOLDER trigger's source must equal the action's source")
    return triggers or None


def parse_objects(body: object) -> list[JsonDict]:
    """``{"objects": [{"relativePath": "/a", "sizeInBytes"?: int, "isDirectory"?: bool}]}``."""
    data = _object(body, "body")
    objects = data.get("objects")
    if not isinstance(objects, list) or not objects:
        raise bad_request("body.objects must be a non-empty list")
    return [_parse_object(item, index) for index, item in enumerate(objects)]


def _parse_object(item: object, index: int) -> JsonDict:
    what = f"objects[{index}]"
    obj = _object(item, what)
    path = obj.get("relativePath")
    if not isinstance(path, str) or not path.startswith("/"):
        raise bad_request(f"{what}.relativePath must be a string starting with '/'")
    if "\x00" in path or ".." in path.split("/"):
        raise bad_request(f"{what}.relativePath must stay inside the storage profile")
    is_directory = obj.get("isDirectory", False)
    if not isinstance(is_directory, bool):
        raise bad_request(f"{what}.isDirectory must be a boolean")
    size = obj.get("sizeInBytes")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise bad_request(f"{what}.sizeInBytes must be a non-negative integer")
    if path.strip("/") == "" and not is_directory:
        raise bad_request(f"{what}: the profile root '/' needs isDirectory true")
    return obj


@dataclass(frozen=True, slots=True)
class JobPatch:
    """A valid ``PATCH /v1/jobs/{jobId}`` body; None = not given."""

    paused: bool | None
    options: JsonDict | None
    transfer_options: JsonDict | None


def parse_patch(body: object) -> JobPatch:
    """``{"paused": true|false}`` (seeds 001/002); the Swagger copy says growing-file options
    are patched too, without a shape: ``options`` and ``transferOptions`` (assumed)."""
    data = _object(body, "body")
    paused = data.get("paused")
    if paused is not None and not isinstance(paused, bool):
        raise bad_request("body.paused must be a boolean")
    options = _job_options(data["options"]) if "options" in data else None
    transfer = data.get("transferOptions")
    if transfer is not None:
        transfer = _object(transfer, "body.transferOptions")
    if paused is None and options is None and transfer is None:
        raise bad_request("body must set paused, options or transferOptions")
    return JobPatch(paused, options, transfer)


def parse_page(query: Mapping[str, str]) -> tuple[int, int]:
    """``offset`` (default 0) and ``limit`` (default and maximum 100) of a list request."""
    try:
        offset = int(query.get("offset", "0"))
        limit = int(query.get("limit", str(MAX_PAGE_LIMIT)))
    except ValueError:
        raise bad_request("offset and limit must be integers") from None
    if offset < 0 or limit < 1:
        raise bad_request("offset must be >= 0 and limit >= 1")
    return offset, min(limit, MAX_PAGE_LIMIT)
