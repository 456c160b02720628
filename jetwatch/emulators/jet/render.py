"""JSON shapes of the emulator's records, as the seeds show them (seed 002 for deliveries).

What JET-API.md does not know is served only when its ``Assumptions`` flag is on.
"""

from __future__ import annotations

from jetwatch.emulators.jet.config import Assumptions
from jetwatch.emulators.jet.model import Delivery, Endpoint, Job, JsonDict, Profile, Transfer
from jetwatch.emulators.jet.state import EmulatorState

# Seed 002 shows "unknown" for deliveries made through the API; keep that.
API_USER = "unknown"
PROFILE_TYPE = "ON_PREMISE_FILE_STORAGE"


def endpoint_json(endpoint: Endpoint) -> JsonDict:
    return {
        "endpointId": endpoint.endpoint_id,
        "name": endpoint.name,
        "status": "ONLINE",
        "createdOn": endpoint.created_on,
    }


def profile_json(state: EmulatorState, profile: Profile) -> JsonDict:
    return {
        **profile.extra,
        "storageProfileId": profile.profile_id,
        "name": profile.name,
        "endpointId": profile.endpoint_id,
        "url": profile.url,
        "storageProfileType": PROFILE_TYPE,
        "accountId": state.account_id,
        "createdOn": profile.created_on,
    }


def job_status(state: EmulatorState, job: Job) -> str:
    """PAUSED, IN_PROGRESS while a delivery moves, READY otherwise."""
    if job.paused:
        return "PAUSED"
    return "IN_PROGRESS" if state.job_is_busy(job) else "READY"


def job_json(state: EmulatorState, job: Job, assume: Assumptions) -> JsonDict:
    """The complete job as a real dump shows it: ``triggers`` always (``[]`` for a manual
    job), ``options`` with the clearBacklog flags, no delivery ids (only when assumed)."""
    body: JsonDict = {
        **job.extra,
        "jobId": job.job_id,
        "name": job.name,
        "actions": job.actions,
        "triggers": job.triggers or [],
        "triggerTypes": job.trigger_types,
        "options": job.options,
        "status": job_status(state, job),
        "paused": job.paused,
        "createdOn": job.created_on,
        "lastModifiedOn": job.last_modified_on,
    }
    if assume.job_deliveries:  # seed 002 says so; no real answer shows it
        body["deliveries"] = [
            {"deliveryId": d, "createdOn": state.deliveries[d].created_on}
            for d in reversed(job.delivery_ids)
        ]
    return body


def delivery_json(state: EmulatorState, delivery: Delivery, *, objects: bool) -> JsonDict:
    """Seed 002's delivery; ``objects`` as posted only when asked (the POST answer, or
    GET with --assume-delivery-objects: seed 002's GET answer has none)."""
    source = state.profiles.get(delivery.source_profile_id)
    return {
        "metadata": {
            "jobId": delivery.job_id,
            "actionId": delivery.action_id,
            "baseUrl": source.url if source else "",
        },
        "createdByUser": API_USER,
        "deliverySummary": state.delivery_progress(delivery).to_json(),
        "lastModifiedByUser": API_USER,
        "state": delivery.state.value,
        "deliveryId": delivery.delivery_id,
        "lastModifiedOn": delivery.last_modified_on,
        "createdOn": delivery.created_on,
        "lastEventTime": delivery.last_event_time,
        "serviceId": state.service_id,
        "transfers": [{"transferId": t} for t in delivery.transfer_ids],
        **({"objects": delivery.objects} if objects else {}),
    }


def _side(state: EmulatorState, profile_id: str) -> JsonDict:
    profile = state.profiles.get(profile_id)
    return {
        "accountId": state.account_id,
        "serviceId": state.service_id,
        "url": profile.url if profile else "",
        "endpointId": profile.endpoint_id if profile else "",
        "storageProfileId": profile_id,
        "storageProfileType": PROFILE_TYPE,
        "type": "INTERNAL",
    }


def transfer_json(state: EmulatorState, transfer: Transfer) -> JsonDict:
    """Seed 002's transfer; ``error`` only when it failed."""
    delivery = state.deliveries[transfer.delivery_id]
    body: JsonDict = {
        "metadata": {
            "isRetry": False,
            "jobId": transfer.job_id,
            "executionId": transfer.execution_id,
            "deliveryId": transfer.delivery_id,
            "deliveryBatchId": transfer.batch_id,
            "disableRetry": False,
        },
        "destination": _side(state, delivery.dest_profile_id),
        "options": {"areGrowingObjects": _growing(state.jobs.get(transfer.job_id))},
        "source": _side(state, delivery.source_profile_id),
        "transferProgress": transfer.progress.to_json(),
        "lastModifiedOn": transfer.last_modified_on,
        "createdOn": transfer.created_on,
        "transferId": transfer.transfer_id,
        "state": transfer.state.value,
    }
    if transfer.error is not None:
        body["error"] = {
            "code": transfer.error.code,
            "message": transfer.error.message,
            "reason": transfer.error.reason,
        }
    return body


def _growing(job: Job | None) -> bool:
    return job is not None and job.growing_idle_s is not None


def in_progress_json(transfer: Transfer) -> JsonDict:
    """An item of ``GET /v1/jobs/{jobId}/transfers?state=IN_PROGRESS`` (JET-API.md): no
    ``deliveryId`` in its metadata; GET the transfer itself for that."""
    progress = transfer.progress.to_json()
    done = sum(progress[k]["count"] for k in ("transferred", "skipped", "failed"))
    remaining = {"count": max(0, len(transfer.objects) - done), "bytes": 0}
    return {
        "transferId": transfer.transfer_id,
        "state": transfer.state.value,
        "createdOn": transfer.created_on,
        "lastModifiedOn": transfer.last_modified_on,
        "objectsManifest": {
            "manifestId": transfer.batch_id,
            "summary": {"count": len(transfer.objects)},
        },
        "transferProgress": {**progress, "remaining": remaining},
        "metadata": {
            "jobId": transfer.job_id,
            "executionId": transfer.execution_id,
            "actionId": "",
            "clientId": "",
            "serverId": "",
        },
    }


def received_json(delivery: Delivery) -> JsonDict:
    """One item of ``GET /_emulator/deliveries``: each object with its ``outcome`` once known
    (a second delivery of a file is then told apart from a second copy of it)."""
    objects = [
        {**obj, **({"outcome": outcome} if outcome else {})}
        for obj, outcome in zip(delivery.objects, delivery.outcomes, strict=True)
    ]
    return {
        "jobId": delivery.job_id,
        "deliveryId": delivery.delivery_id,
        "objects": objects,
        "state": delivery.state.value,
        "createdOn": delivery.created_on,
    }
