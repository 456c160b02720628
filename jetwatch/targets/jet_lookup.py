"""The in-doubt question for Jet: did the job receive a delivery of exactly these objects?

The known API cannot answer it (a job does not list its deliveries, GET delivery shows no
objects, POST has no idempotency key: JET-API.md). What it does show is which transfers of
the job are in progress, and (GET transfer) which delivery each belongs to: those of
deliveries jetwatch does not know may be the lost one, and the batch is sent again only
once they are over (``pipeline/in_doubt.py``), so Jet skips what arrived.

Where answers carry more, it is used, decided by what they contain at run time: a job's
delivery ids and objects on GET delivery, or per-file records, adopt the matching delivery,
and a complete delivery list without it proves the POST never arrived. Every unknown
delivery is examined (in-flight ones first, then the list from both ends inward, since its
order is not documented); what a delivery holds never changes, so each is read once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import structlog

from jetwatch.apis.jet.client import JetClient
from jetwatch.apis.jet.models import DeliveryObject, Job
from jetwatch.domain.target import Lookup
from jetwatch.errors import NotFoundError

log = structlog.get_logger(__name__)

CLOCK_SKEW_S = 300.0  # a delivery made this much "before" the attempt may still be it
MAX_CACHED = 100_000  # deliveries and transfers remembered (a few hundred bytes each)

Wanted = frozenset[str]
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class _View:
    """What GET delivery shows of one delivery; ``paths`` None when it shows no objects."""

    paths: frozenset[str] | None
    sizes: dict[str, int]
    created_s: float | None
    base_url: str


def _both_ends(ids: Sequence[str]) -> list[str]:
    """first, last, second, second-last, ...: the newest is at one end or the other."""
    order: list[str] = []
    low, high = 0, len(ids) - 1
    while low <= high:
        order.append(ids[low])
        if high != low:
            order.append(ids[high])
        low, high = low + 1, high - 1
    return order


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


class DeliveryLookup:
    """Answers ``find_submission`` for one Jet client; caches what never changes."""

    def __init__(self, client: JetClient, *, grace_s: float, max_wait_s: float) -> None:
        self._client = client
        self._grace_s = grace_s
        self._max_wait_s = max_wait_s
        self._views: dict[str, _View] = {}
        self._delivery_of: dict[str, str | None] = {}  # transfer id → its delivery id

    async def find(
        self,
        job_id: str,
        objects: Sequence[DeliveryObject],
        known: set[str],
        since: float | None,
    ) -> Lookup:
        """Found, not received, or unproven with the in-flight transfers that may be it."""
        wanted = frozenset(o.relative_path for o in objects)
        sizes = {o.relative_path: o.size_in_bytes for o in objects if o.size_in_bytes is not None}
        job = await self._client.get_job(job_id)
        flights = await self._in_flight(job_id, known)
        candidates = list(dict.fromkeys(d for d in flights.values() if d is not None))
        listed = [d for d in job.delivery_ids or [] if d not in known]
        candidates += [d for d in _both_ends(listed) if d not in candidates]
        shown = True  # every delivery examined showed its objects
        for delivery_id in candidates:
            view = await self._view(job_id, delivery_id)
            if view is None:
                continue
            if view.paths is None:
                shown = False
                break  # this API shows no objects: the others will not either
            if self._matches(view, wanted, sizes, since):
                return self._found(job_id, delivery_id, "objects")
        by_files = await self._match_files(job_id, wanted, known, since)
        if by_files is not None:
            return self._found(job_id, by_files, "files")
        if self._proves_absence(job, shown):
            return Lookup.not_received()
        in_flight = frozenset(
            t for t, d in flights.items() if d is None or not self._rules_out(d, wanted)
        )
        return Lookup.unproven(in_flight, self._grace_s, self._max_wait_s)

    @staticmethod
    def _proves_absence(job: Job, shown: bool) -> bool:
        # A complete delivery list, each showing its objects, none of them ours.
        return job.delivery_ids is not None and shown

    def _found(self, job_id: str, delivery_id: str, how: str) -> Lookup:
        log.info("jet_submission_found", job_id=job_id, delivery_id=delivery_id, by=how)
        return Lookup.found(delivery_id)

    def _rules_out(self, delivery_id: str, wanted: Wanted) -> bool:
        """A delivery whose objects are shown and are not ours cannot be the lost one."""
        view = self._views.get(delivery_id)
        return view is not None and view.paths is not None and view.paths != wanted

    @staticmethod
    def _matches(view: _View, wanted: Wanted, sizes: dict[str, int], since: float | None) -> bool:
        if view.paths != wanted:
            return False
        if any(view.sizes.get(path, size) != size for path, size in sizes.items()):
            return False  # same names, other versions (sizes posted then and now differ)
        made = view.created_s
        return since is None or made is None or made >= since - CLOCK_SKEW_S

    async def _in_flight(self, job_id: str, known: set[str]) -> dict[str, str | None]:
        """In-progress transfers of deliveries jetwatch does not know → their delivery id
        (None when the API does not say)."""
        flights: dict[str, str | None] = {}
        for transfer in await self._client.list_transfers(job_id):
            tid = transfer.transfer_id
            if tid not in self._delivery_of:
                delivery_id = transfer.metadata.delivery_id
                if delivery_id is None:
                    try:  # the listing's metadata has none; the transfer itself does
                        full = await self._client.get_transfer(job_id, tid)
                    except NotFoundError:
                        continue  # finished and gone meanwhile
                    delivery_id = full.metadata.delivery_id
                self._remember(self._delivery_of, tid, delivery_id)
            delivery_id = self._delivery_of[tid]
            if delivery_id not in known:
                flights[tid] = delivery_id
        return flights

    async def _view(self, job_id: str, delivery_id: str) -> _View | None:
        view = self._views.get(delivery_id)
        if view is not None:
            return view
        try:
            delivery = await self._client.get_delivery(job_id, delivery_id)
        except NotFoundError:
            return None
        objects = delivery.objects
        base_url = delivery.metadata.base_url if delivery.metadata else None
        view = _View(
            paths=None if objects is None else frozenset(o.relative_path for o in objects),
            sizes={
                o.relative_path: o.size_in_bytes
                for o in objects or []
                if o.size_in_bytes is not None
            },
            created_s=_epoch(delivery.created_on),
            base_url=base_url or "",
        )
        self._remember(self._views, delivery_id, view)
        return view

    async def _match_files(
        self, job_id: str, wanted: Wanted, known: set[str], since: float | None
    ) -> str | None:
        """Per-file records, where an API has them: the unknown delivery whose files are ours."""
        records = await self._client.list_job_files(job_id)
        by_transfer: dict[str, set[str]] = {}
        for record in records:
            if record.transfer_id and record.url:
                by_transfer.setdefault(record.transfer_id, set()).add(record.url)
        urls: dict[str, set[str]] = {}
        for transfer_id, found in by_transfer.items():
            delivery_id = await self._delivery_of_transfer(job_id, transfer_id)
            if delivery_id is not None and delivery_id not in known:
                urls.setdefault(delivery_id, set()).update(found)
        for delivery_id, found in urls.items():
            view = await self._view(job_id, delivery_id)
            if view is None or not view.base_url:
                continue
            paths = frozenset(_relative(url, view.base_url) for url in found)
            made = view.created_s
            if paths == wanted and (since is None or made is None or made >= since - CLOCK_SKEW_S):
                return delivery_id
        return None

    async def _delivery_of_transfer(self, job_id: str, transfer_id: str) -> str | None:
        if transfer_id not in self._delivery_of:
            try:
                transfer = await self._client.get_transfer(job_id, transfer_id)
            except NotFoundError:
                return None
            self._remember(self._delivery_of, transfer_id, transfer.metadata.delivery_id)
        return self._delivery_of[transfer_id]

    @staticmethod
    def _remember(cache: dict[str, V], key: str, value: V) -> None:
        if len(cache) >= MAX_CACHED:
            cache.clear()  # rare; costs re-reading, never a wrong answer
        cache[key] = value


def _relative(url: str, base_url: str) -> str:
    base = base_url.rstrip("/")
    return url[len(base) :] if url.startswith(base + "/") else url
