"""``JetStreamTarget``: each batch is one JetStream transfer of one manifest (seed 004).

Per batch: ``createManifest(mappings={destination path: local path})``, wait for it by
polling ``getManifest`` (never the blocking ``waitForManifest``), ``createDestination``
(cached per connection), ``createTransfer``. The handle is ``t:<transferId>/m:<manifestId>``.
``poll`` reads ``getTransfer``: while ``processing`` it runs; ``complete`` succeeds for every
file, ``error`` fails with ``errorMessage``, ``suspended`` is resumed up to ``max_resumes``
times (counted per process: a restart grants a fresh allowance), unknown statuses are not
terminal until ``transfer_timeout_seconds``. The vendor documents no "unknown transfer" error, so
a transfer the server forgot reads as a retryable failure until that timeout, then fails.

In-doubt resolution needs two things the seed does not document: manifests that show their
``mappings`` and a transfer listing (``send.getTransfers()``) naming each transfer's
``manifestId``. When the vendor module offers both, ``find_submission`` matches on them;
otherwise it answers None and the batch is sent again — JetStream then writes the same
bytes to the same destination paths, a duplicate transfer but not duplicate files.
"""

from __future__ import annotations

import asyncio
import posixpath
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import SecretStr

from jetwatch.apis.exchange import Sleep
from jetwatch.apis.jetstream import VendorSession, load_module
from jetwatch.config.targets import JetStreamSettings
from jetwatch.domain.target import Lookup, Progress, SubmitObject, TargetStatus
from jetwatch.errors import (
    NotFoundError,
    OutcomeUnknownError,
    ProtocolError,
    RejectedError,
    TransportError,
)

log = structlog.get_logger(__name__)

RUNNING, COMPLETE, SUSPENDED, ERROR = "sending", "complete", "suspended", "error"


@dataclass(frozen=True, slots=True)
class Handle:
    """A transfer and the manifest it sends, as stored in the ledger."""

    transfer_id: str
    manifest_id: str

    def __str__(self) -> str:
        return f"t:{self.transfer_id}/m:{self.manifest_id}"

    @classmethod
    def parse(cls, text: str) -> Handle:
        """The handle ``str()`` wrote; NotFoundError for anything else."""
        head, sep, manifest_id = text.rpartition("/m:")
        if not sep or not head.startswith("t:") or len(head) == 2 or not manifest_id:
            raise NotFoundError(f"{text!r} is not a JetStream handle", status=404)
        return cls(head[2:], manifest_id)


def mappings_of(objects: Sequence[SubmitObject], destination_root: str) -> dict[str, str]:
    """Pure: ``{destination path: local path}`` keeping each file's folder-relative path."""
    return {
        posixpath.join(destination_root, o.relpath.lstrip("/")): str(o.local_path) for o in objects
    }


def record_id(record: Any, key: str, call: str) -> str:
    """The id field of a vendor answer; ProtocolError when the answer has none."""
    value = record.get(key) if isinstance(record, Mapping) else None
    if value is None or value == "":
        raise ProtocolError(f"JetStream {call} answered without {key}")
    return str(value)


def _count(record: Mapping[str, Any], *keys: str) -> int:
    for key in keys:
        value = record.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


def judge_transfer(
    transfer: Mapping[str, Any], objects: int, age_s: float, timeout_s: float
) -> Progress:
    """Pure: the Progress a ``getTransfer`` answer shows (``suspended`` here means given up)."""
    status = str(transfer.get("status") or "")
    bytes_done = _count(transfer, "bytesTransferred", "totalSize")
    # Seed 004: while processing, status is informational only.
    stopped = not transfer.get("processing")
    if stopped and status == COMPLETE:
        return Progress(True, False, status, transferred=objects, bytes_done=bytes_done)
    if stopped and status in (ERROR, SUSPENDED):
        reason = transfer.get("errorMessage") or ("suspended" if status == SUSPENDED else "")
        detail = f"transfer {transfer.get('transferId')} {status}: {reason or 'no reason given'}"
        return Progress(True, True, status, failed_count=objects, detail=detail)
    if age_s > timeout_s:
        detail = f"no terminal status after {timeout_s:.0f} s (status {status or 'none'})"
        return Progress(True, True, status, failed_count=objects, detail=detail)
    return Progress(False, False, status or RUNNING, bytes_done=bytes_done)


class JetStreamTarget:
    """Sends batches through a local JetStream server to one destination."""

    kind = "jetstream"

    def __init__(
        self,
        settings: JetStreamSettings,
        password: SecretStr,
        *,
        module: Any = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        # Imported here, not at module load, so jetwatch runs without the vendor module.
        self._session = VendorSession(
            module if module is not None else load_module(),
            settings.host,
            settings.port,
            settings.username,
            password,
            call_timeout_s=settings.call_timeout_seconds,
        )
        self._sleep = sleep
        self._clock = clock
        self._destination: tuple[int, Any] | None = None  # (connection generation, record)
        self._resumes: dict[str, int] = {}

    def __repr__(self) -> str:
        s = self._settings
        return f"JetStreamTarget(server={s.host}:{s.port}, destination={s.destination_host})"

    async def check(self) -> TargetStatus:
        """Connect and authenticate (raises when that fails), then create the destination."""
        await self._session.call("connect", lambda api: None)
        try:
            destination = await self._ensure_destination()
        except TransportError as exc:
            return TargetStatus(False, problem=f"destination unusable: {exc}")
        return TargetStatus(True, ident=str(destination.get("destinationId", "")) or None)

    async def submit(self, objects: Sequence[SubmitObject], *, ident: str | None = None) -> str:
        """Manifest, destination, transfer; the handle names the transfer and its manifest."""
        mappings = mappings_of(objects, self._settings.destination_root)
        manifest = await self._session.call(
            "createManifest", lambda api: api.send.createManifest(mappings=mappings)
        )
        manifest = await self._wait_for_manifest(manifest)
        try:
            destination = await self._ensure_destination()
        except TransportError:
            await self._delete_manifest(str(manifest["manifestId"]))
            raise
        transfer = await self._session.call(
            "createTransfer",
            lambda api: api.send.createTransfer(destination, manifest),
            idempotent=False,
        )
        try:
            transfer_id = record_id(transfer, "transferId", "createTransfer")
        except ProtocolError as exc:
            # A transfer may exist that we cannot name: resolve it, never send blindly.
            raise OutcomeUnknownError(str(exc)) from exc
        handle = Handle(transfer_id, record_id(manifest, "manifestId", "createManifest"))
        log.info("jetstream_transfer_created", handle=str(handle), files=len(objects))
        return str(handle)

    async def poll(
        self, handle: str, objects: int, age_s: float, *, ident: str | None = None
    ) -> Progress:
        """getTransfer; resume a suspended transfer while the allowance lasts.

        ``ident`` is not needed (transfer ids are the server's); it is accepted for the protocol.
        """
        ref = Handle.parse(handle)
        wanted = {"transferId": ref.transfer_id}
        try:
            transfer = await self._session.call(
                "getTransfer", lambda api: api.send.getTransfer(wanted)
            )
        except TransportError as exc:
            if age_s <= self._settings.transfer_timeout_seconds:
                raise
            # The server may have forgotten it: past the timeout, that is a verdict.
            return Progress(True, True, "unknown", failed_count=objects, detail=str(exc))
        if not isinstance(transfer, Mapping):
            raise ProtocolError("JetStream getTransfer answered no transfer")
        if _is_suspended(transfer) and self._resumes.get(handle, 0) < self._settings.max_resumes:
            self._resumes[handle] = self._resumes.get(handle, 0) + 1
            await self._session.call("resumeTransfer", lambda api: api.send.resumeTransfer(wanted))
            log.warning("jetstream_transfer_resumed", handle=handle, resumes=self._resumes[handle])
            return Progress(False, False, SUSPENDED)
        progress = judge_transfer(transfer, objects, age_s, self._settings.transfer_timeout_seconds)
        if progress.done:
            self._resumes.pop(handle, None)
            await self._delete_manifest(ref.manifest_id)
        return progress

    async def find_submission(
        self,
        objects: Sequence[SubmitObject],
        known_handles: set[str],
        *,
        ident: str | None = None,
        since: float | None = None,
    ) -> Lookup:
        """A transfer of a manifest with exactly these mappings, when the module can list
        them; otherwise sent again at once (it writes the same bytes to the same paths)."""
        found = await self._find_transfer(objects, known_handles)
        return Lookup.not_received() if found is None else Lookup.found(found)

    async def is_moving(self, handle: str, *, ident: str | None = None) -> bool:
        return True  # stalls are not detected for transfers (``suspended`` is resumed)

    async def _find_transfer(
        self, objects: Sequence[SubmitObject], known_handles: set[str]
    ) -> str | None:
        wanted = mappings_of(objects, self._settings.destination_root)

        def search(api: Any) -> tuple[bool, str | None]:
            send = api.send
            if not hasattr(send, "getTransfers"):
                return False, None
            manifests = {
                str(m.get("manifestId")) for m in send.getManifests() if m.get("mappings") == wanted
            }
            for transfer in send.getTransfers():
                manifest_id = str(transfer.get("manifestId"))
                handle = str(Handle(str(transfer.get("transferId")), manifest_id))
                if manifest_id in manifests and handle not in known_handles:
                    return True, handle
            return True, None

        listed, found = await self._session.call("getManifests", search)
        if not listed:
            # Documented in the module docstring: the batch will be sent again.
            log.warning("jetstream_in_doubt_unresolvable", reason="no transfer listing")
        elif found is not None:
            log.info("jetstream_submission_found", handle=found)
        return found

    async def aclose(self) -> None:
        await self._session.close()

    async def _wait_for_manifest(self, manifest: Any) -> Any:
        """Poll getManifest until it stops processing; an error status rejects the batch."""
        manifest_id = record_id(manifest, "manifestId", "createManifest")
        ref = {"manifestId": manifest_id}
        deadline = self._clock() + self._settings.manifest_timeout_seconds
        while manifest.get("processing", True) and manifest.get("status") != ERROR:
            if self._clock() > deadline:
                await self._delete_manifest(manifest_id)
                limit_s = self._settings.manifest_timeout_seconds
                raise TransportError(f"manifest {manifest_id} not ready after {limit_s:.0f} s")
            await self._sleep(self._settings.manifest_poll_seconds)
            answer = await self._session.call("getManifest", lambda api: api.send.getManifest(ref))
            if not isinstance(answer, Mapping):
                raise ProtocolError("JetStream getManifest answered no manifest")
            manifest = {"manifestId": manifest_id, **answer}
        if manifest.get("status") != COMPLETE:
            await self._delete_manifest(manifest_id)
            reason = str(manifest.get("errorMessage") or manifest.get("status"))
            raise RejectedError(f"manifest {manifest_id} failed: {reason}", status=400, body=reason)
        return manifest

    async def _ensure_destination(self) -> Any:
        cached = self._destination
        if cached is not None and cached[0] == self._session.generation:
            return cached[1]
        s = self._settings
        destination = await self._session.call(
            "createDestination",
            lambda api: api.send.createDestination(
                s.destination_host, destinationPort=s.destination_port
            ),
        )
        self._destination = (self._session.generation, destination)
        return destination

    async def _delete_manifest(self, manifest_id: str) -> None:
        # Seed 004: a manifest may be deleted at any time; leftovers only cost server memory.
        try:
            ref = {"manifestId": manifest_id}
            await self._session.call("deleteManifest", lambda api: api.send.deleteManifest(ref))
        except TransportError as exc:
            log.info("jetstream_manifest_not_deleted", manifest_id=manifest_id, reason=str(exc))


def _is_suspended(transfer: Mapping[str, Any]) -> bool:
    return not transfer.get("processing") and transfer.get("status") == SUSPENDED
