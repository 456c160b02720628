"""JSON shapes of the emulator's records, as the seeds show them (seed 002 for deliveries)."""

from __future__ import annotations

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


def job_json(state: EmulatorState, job: Job) -> JsonDict:
    """The complete job; ``deliveries`` newest first (seed 002: the job shows their ids)."""
    body: JsonDict = {
        **job.extra,
        "jobId": job.job_id,
        "name": job.name,
        "actions": job.actions,
        "triggerTypes": job.trigger_types,
        "status": job_status(state, job),
        "paused": job.paused,
        "createdOn": job.created_on,
        "lastModifiedOn": job.last_modified_on,
        "deliveries": [
            {"deliveryId": d, "createdOn": state.deliveries[d].created_on}
            for d in reversed(job.delivery_ids)
        ],
    }
    if job.triggers:
        body["triggers"] = job.triggers
    return body


def delivery_json(state: EmulatorState, delivery: Delivery) -> JsonDict:
    """Seed 002's delivery, plus ``objects`` as posted.

    ``objects`` is an assumption (not in the seed): jetwatch reads it to match an in-doubt
    submission to the delivery that the API did receive.
    """
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
        "objects": delivery.objects,
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


def _growing(job: Job | None) -> bool:
    if job is None:
        return False
    data = job.actions[0].get("data")
    options = data.get("transferOptions") if isinstance(data, dict) else None
    return bool(options.get("areGrowingObjects")) if isinstance(options, dict) else False


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


def received_json(delivery: Delivery) -> JsonDict:
    """One item of ``GET /_emulator/deliveries``."""
    return {
        "jobId": delivery.job_id,
        "deliveryId": delivery.delivery_id,
        "objects": delivery.objects,
        "state": delivery.state.value,
        "createdOn": delivery.created_on,
    }
