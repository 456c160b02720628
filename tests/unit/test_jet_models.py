"""Tests of the Jet wire models: lenient parsing of the job, delivery and transfer variants."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from jetwatch.apis.jet.models import (
    Delivery,
    DeliveryObject,
    DeliveryState,
    Job,
    JobStatus,
    Transfer,
    TransferState,
)
from jetwatch.apis.pages import parse_page
from jetwatch.apis.token import Token
from jetwatch.errors import ProtocolError
from jetwatch.targets.jet import judge_delivery

SOURCE = {"storageProfileId": "src-1"}
DESTINATION = {"storageProfileId": "dst-1"}


def _job(**fields: Any) -> dict[str, Any]:
    action: dict[str, Any] = {
        "type": "TRANSFER",
        "data": {"source": SOURCE, "destination": DESTINATION},
    }
    if "action_triggers" in fields:
        action["triggers"] = fields.pop("action_triggers")
    return {"jobId": "job-1", "name": "Manual Job", "actions": [action], **fields}


@pytest.mark.parametrize(
    ("fields", "manual"),
    [
        ({}, True),
        ({"triggerTypes": ["HOT_FOLDER"]}, False),
        ({"triggerTypes": ["MANUAL"]}, True),
        ({"triggerTypes": ["MANUAL_START"]}, True),
        ({"triggerTypes": "HOT_FOLDER"}, False),
        ({"triggerTypes": ["hot_folder"]}, False),
        ({"triggerTypes": None}, True),
        ({"action_triggers": [{"type": "HOT_FOLDER", "data": {"source": SOURCE}}]}, False),
        # JET-API.md: a SCHEDULE trigger starts the job by itself, so it is not manual.
        ({"action_triggers": [{"type": "SCHEDULE"}]}, False),
        ({"triggerTypes": ["SCHEDULE"]}, False),
        # A real dump of a manual job: triggers [] and triggerTypes [] or ["MANUAL"].
        ({"triggers": [], "triggerTypes": []}, True),
        ({"triggers": [], "triggerTypes": ["MANUAL"]}, True),
        ({"triggers": [{"type": "HOT_FOLDER"}]}, False),
        ({"triggers": ["HOT_FOLDER"]}, False),
        ({"triggers": ["MANUAL"]}, True),
    ],
)
def test_job_is_manual_unless_a_hot_folder_or_schedule_trigger_is_present(
    fields: dict[str, Any], manual: bool
) -> None:
    """Every documented and observed way of naming triggers decides ``is_manual``."""
    assert Job.model_validate(_job(**fields)).is_manual is manual


@pytest.mark.parametrize(
    ("fields", "paused"),
    [
        ({}, False),
        ({"paused": True}, True),
        ({"paused": False, "status": "READY"}, False),
        ({"status": "PAUSED"}, True),
        ({"paused": None}, False),
    ],
)
def test_job_paused_from_flag_or_status(fields: dict[str, Any], paused: bool) -> None:
    """A job is paused when its flag says so or its status is PAUSED."""
    assert Job.model_validate(_job(**fields)).paused is paused


@pytest.mark.parametrize(
    ("fields", "ids"),
    [
        ({}, None),  # the real API: a job does not list its deliveries
        ({"deliveries": [{"deliveryId": "d1"}, {"deliveryId": "d2", "state": "X"}]}, ["d1", "d2"]),
        ({"deliveries": ["d1", "d2"]}, ["d1", "d2"]),
        ({"deliveries": [{"id": "d3"}, {"other": 1}]}, ["d3"]),
        ({"deliveryIds": ["d4"]}, ["d4"]),
        ({"deliveries": None}, None),
        ({"deliveries": []}, []),
    ],
)
def test_job_delivery_ids_parsed_leniently(fields: dict[str, Any], ids: list[str] | None) -> None:
    """Delivery ids come from objects, strings or a deliveryIds list; None when the answer
    has no such list (then absence of a delivery cannot be proven from the job)."""
    assert Job.model_validate(_job(**fields)).delivery_ids == ids


def test_job_names_profiles_status_and_unknown_fields() -> None:
    """jobName is an alias of name; profile ids come from the first action; extras are ignored."""
    job = Job.model_validate(
        {
            "jobId": 42,
            "jobName": "From a doc copy",
            "status": "IN_PROGRESS",
            "errorCode": "RETRYING_TRANSFER",
            "brandNewField": {"x": 1},
            "actions": [
                {"type": "TRANSFER", "data": {"source": SOURCE, "destination": DESTINATION}}
            ],
        }
    )
    assert job.job_id == "42"
    assert job.name == "From a doc copy"
    assert job.status is JobStatus.IN_PROGRESS
    assert job.error_code == "RETRYING_TRANSFER"
    assert job.source_profile_id == "src-1"


def test_job_without_actions_has_no_profiles_and_keeps_an_unknown_status() -> None:
    """A bare job parses; an unknown status stays a plain string."""
    job = Job.model_validate({"jobId": "j", "status": "MIGRATING"})
    assert job.source_profile_id is None
    assert job.status == "MIGRATING"
    assert not isinstance(job.status, JobStatus)


def test_job_without_id_is_rejected() -> None:
    """jobId is the one field the client cannot do without."""
    with pytest.raises(ValidationError):
        Job.model_validate({"name": "nameless"})


SEED_DELIVERY = {
    "metadata": {"jobId": "job-1", "actionId": "a-1", "baseUrl": "https://example.com/s"},
    "createdByUser": "unknown",
    "deliverySummary": {
        "transferred": {"count": 12, "bytes": 69291341},
        "skipped": {"count": 1, "bytes": 5},
        "failed": {"count": 0, "bytes": 0},
    },
    "state": "IN_PROGRESS",
    "deliveryId": "del-1",
    "lastModifiedOn": "2025-09-15T18:29:01.889Z",
    "createdOn": "2025-09-15T18:28:59.681Z",
    "transfers": [{"transferId": "t-1"}, "t-2"],
}


def test_delivery_from_the_seed_document() -> None:
    """The documented GET answer parses into state, counts, timestamps and transfer ids."""
    delivery = Delivery.model_validate(SEED_DELIVERY)
    assert delivery.state is DeliveryState.IN_PROGRESS
    assert not judge_delivery(delivery, 1, 0.0, 60.0).done
    assert delivery.summary.transferred.count == 12
    assert delivery.summary.transferred.size_bytes == 69291341
    assert delivery.summary.skipped.count == 1
    assert delivery.created_on is not None
    assert delivery.created_on.year == 2025
    assert delivery.transfer_ids == ["t-1", "t-2"]
    assert delivery.metadata is not None
    assert delivery.metadata.job_id == "job-1"
    assert delivery.objects is None


@pytest.mark.parametrize(("state", "terminal"), [("COMPLETED", True), ("FAILED", True)])
def test_delivery_terminal_states(state: str, terminal: bool) -> None:
    """COMPLETED and FAILED are terminal and compare equal to the enum constants."""
    delivery = Delivery.model_validate({**SEED_DELIVERY, "state": state})
    assert judge_delivery(delivery, 1, 0.0, 60.0).done is terminal
    assert delivery.state == DeliveryState(state)


def test_delivery_unknown_state_is_kept_and_not_terminal() -> None:
    """An undocumented state survives parsing as a string and never ends tracking."""
    delivery = Delivery.model_validate({**SEED_DELIVERY, "state": "ARCHIVING", "x": [1]})
    assert delivery.state == "ARCHIVING"
    assert not judge_delivery(delivery, 1, 0.0, 60.0).done


def test_delivery_post_answer_without_state() -> None:
    """The POST answer has only objects and an id."""
    delivery = Delivery.model_validate(
        {"objects": [{"relativePath": "/", "sizeInBytes": 1000000}], "deliveryId": "d"}
    )
    assert delivery.state is None
    assert delivery.objects == [DeliveryObject(relative_path="/", size_in_bytes=1000000)]
    assert delivery.summary.transferred.count == 0


def test_delivery_object_serialises_camel_case_without_nones() -> None:
    """Objects go on the wire as the docs show them."""
    file_obj = DeliveryObject(relative_path="/a.mp4", size_in_bytes=10)
    folder = DeliveryObject(relative_path="/dir", is_directory=True)
    assert file_obj.model_dump(by_alias=True, exclude_none=True) == {
        "relativePath": "/a.mp4",
        "sizeInBytes": 10,
    }
    assert folder.model_dump(by_alias=True, exclude_none=True) == {
        "relativePath": "/dir",
        "isDirectory": True,
    }


def test_transfer_with_error_retry_flag_and_unknown_state() -> None:
    """Transfer fields parse; an unknown state is kept; known ones map to the enum."""
    raw = {
        "metadata": {"isRetry": True, "jobId": "j", "deliveryId": "d", "disableRetry": False},
        "transferProgress": {"failed": {"count": 2, "bytes": 10}},
        "state": "PAUSED_BY_OPERATOR",
        "transferId": "t-1",
        "error": {"code": "E1", "message": "disk", "reason": "full", "errorHandlingPolicy": "X"},
        "source": {"url": "file:///usr/"},
    }
    transfer = Transfer.model_validate(raw)
    assert transfer.is_retry
    assert transfer.state == "PAUSED_BY_OPERATOR"
    assert transfer.transfer_progress.failed.count == 2
    assert transfer.error is not None
    assert transfer.error.reason == "full"
    assert transfer.metadata.delivery_id == "d"
    done = Transfer.model_validate({"transferId": "t-2", "state": "CANCELLED"})
    assert done.state is TransferState.CANCELLED
    assert not done.is_retry
    assert done.error is None


def test_token_hides_the_access_token() -> None:
    """The token's repr never shows its value."""
    token = Token.model_validate({"access_token": "abc.def", "expires_in": 3, "x": 1})
    assert "abc.def" not in repr(token)
    assert token.access_token.get_secret_value() == "abc.def"
    assert token.expires_in == 3.0


def test_page_shapes() -> None:
    """Bare arrays, items objects and offset paging are all understood."""
    assert parse_page([1, 2]).items == [1, 2]
    plain = parse_page({"items": [1]})
    assert (plain.items, plain.next_offset, plain.next_link) == ([1], None, None)
    paged = parse_page({"items": [1, 2], "offset": 0, "limit": 2, "totalResultCount": 5})
    assert (paged.next_offset, paged.limit) == (2, 2)
    last = parse_page({"items": [5], "offset": 4, "limit": 2, "totalResultCount": 5})
    assert last.next_offset is None
    empty = parse_page({"items": [], "offset": 4, "totalResultCount": 9, "next": "/v1/x"})
    assert (empty.next_offset, empty.next_link) == (None, None)
    linked = parse_page({"items": [1], "next": "/v1/jobs?page=2", "totalResultCount": True})
    assert (linked.next_link, linked.next_offset) == ("/v1/jobs?page=2", None)


@pytest.mark.parametrize("body", [{"jobs": []}, "text", None, {"items": {"a": 1}}])
def test_page_of_the_wrong_shape(body: Any) -> None:
    """Anything other than an array or an items list is a protocol error."""
    with pytest.raises(ProtocolError):
        parse_page(body)
