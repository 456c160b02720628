"""A fake of the vendor ``jetstream`` module (seed 004) that really copies files.

``FakeJetStreamServer(dest_root)`` is the server side shared by every ``api`` object;
``server.module`` stands in for ``import jetstream`` (``module.JetStream().api(host, port)``).
Only the documented surface exists: connect/disconnect/context manager, ``server.auth``,
``send.createManifest/getManifest/getManifests/deleteManifest/createDestination/
createTransfer/getTransfer/resumeTransfer``, with the seed's field names and statuses.
With ``listing=True`` manifests also show their ``mappings`` and ``send.getTransfers()``
exists (undocumented extras a real server may or may not have). Transfers copy in a
background thread under ``dest_root`` (destination paths are taken relative to it); tests
steer them with ``suspend_times`` and ``error_paths``. Every method takes one lock.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace, TracebackType
from typing import Any


class FakeJetStreamError(Exception):
    """What the fake raises where the vendor raises (its exception types are undocumented)."""


@dataclass
class _Transfer:
    record: dict[str, Any]
    mappings: dict[str, str]
    suspends_left: int
    resumed: threading.Event = field(default_factory=threading.Event)
    done: list[str] = field(default_factory=list)


def _id_of(ref: Any, key: str) -> str:
    return str(ref[key]) if isinstance(ref, dict) else str(ref)


class FakeJetStreamServer:
    """The server side: users, manifests, destinations and transfers, behind one lock."""

    def __init__(
        self,
        dest_root: Path,
        *,
        users: dict[str, str] | None = None,
        listing: bool = False,
        manifest_polls: int = 2,
    ) -> None:
        self.dest_root = dest_root
        self.users = users if users is not None else {"jsmith": "secret"}
        self.listing = listing
        self.manifest_polls = manifest_polls  # getManifest calls until a manifest is ready
        self.refuse_connections = False
        self.suspend_times = 0  # each new transfer suspends this many times (after a file)
        self.error_paths: list[str] = []  # source globs whose transfer ends in error
        self.call_threads: set[str] = set()
        self.calls: list[str] = []
        self.apis: list[FakeApi] = []
        self.stalled = threading.Event()  # set: every call blocks until it is cleared
        self.lock = threading.RLock()
        self.manifests: dict[str, dict[str, Any]] = {}
        self.transfers: dict[str, _Transfer] = {}
        self._manifest_mappings: dict[str, dict[str, str]] = {}
        self._polls: dict[str, int] = {}
        self._next_id = 1
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.module = SimpleNamespace(JetStream=lambda: SimpleNamespace(api=self._api))

    def _api(self, host: str, port: int) -> FakeApi:
        api = FakeApi(self, host, port)
        with self.lock:
            self.apis.append(api)
        return api

    def drop_connections(self) -> None:
        """Every open connection breaks (a server restart or a network cut)."""
        with self.lock:
            for api in self.apis:
                api.connected = api.authed = False

    def new_id(self) -> str:
        with self.lock:
            self._next_id += 1
            return str(self._next_id)

    def record(self, name: str) -> None:
        with self.lock:
            self.calls.append(name)
            self.call_threads.add(threading.current_thread().name)

    def stop(self) -> None:
        """Let every copy thread finish (suspended ones give up) and stalled calls return."""
        self._stop.set()
        self.stalled.clear()
        with self.lock:
            for transfer in self.transfers.values():
                transfer.resumed.set()
        for thread in self._threads:
            thread.join(timeout=10)

    # -- manifests ----------------------------------------------------------------------

    def create_manifest(self, mappings: dict[str, str]) -> dict[str, Any]:
        manifest_id = self.new_id()
        record = {
            "status": "pending",
            "processing": True,
            "totalFiles": None,
            "totalSize": None,
            "errorMessage": None,
            "manifestId": manifest_id,
        }
        with self.lock:
            self.manifests[manifest_id] = record
            self._manifest_mappings[manifest_id] = dict(mappings)
            self._polls[manifest_id] = 0
        return self.manifest_view(manifest_id)

    def get_manifest(self, manifest_id: str) -> dict[str, Any]:
        with self.lock:
            record = self._manifest(manifest_id)
            self._polls[manifest_id] += 1
            if record["processing"] and self._polls[manifest_id] >= self.manifest_polls:
                self._finish_manifest(record, self._manifest_mappings[manifest_id])
            return self.manifest_view(manifest_id)

    def _finish_manifest(self, record: dict[str, Any], mappings: dict[str, str]) -> None:
        missing = [src for src in mappings.values() if not Path(src).is_file()]
        record["processing"] = False
        if missing:
            record["status"], record["errorMessage"] = "error", f"no such file: {missing[0]}"
            return
        record["status"] = "complete"
        record["totalFiles"] = len(mappings)
        record["totalSize"] = sum(Path(src).stat().st_size for src in mappings.values())

    def manifest_view(self, manifest_id: str) -> dict[str, Any]:
        with self.lock:
            view = dict(self._manifest(manifest_id))
            if self.listing:
                view["mappings"] = dict(self._manifest_mappings[manifest_id])
            return view

    def _manifest(self, manifest_id: str) -> dict[str, Any]:
        record = self.manifests.get(manifest_id)
        if record is None:
            raise FakeJetStreamError(f"unknown manifest {manifest_id}")
        return record

    def delete_manifest(self, manifest_id: str) -> None:
        with self.lock:
            self.manifests.pop(manifest_id, None)

    # -- transfers ----------------------------------------------------------------------

    def create_transfer(self, destination: dict[str, Any], manifest_id: str) -> dict[str, Any]:
        with self.lock:
            manifest = self._manifest(manifest_id)
            if manifest["processing"] or manifest["status"] != "complete":
                raise FakeJetStreamError(f"manifest {manifest_id} is not complete")
            transfer_id = self.new_id()
            record = {
                "transferId": transfer_id,
                "processing": True,
                "status": "pending",
                "destinationId": str(destination["destinationId"]),
                "errorMessage": None,
                "manifestId": manifest_id,
            }
            transfer = _Transfer(
                record, dict(self._manifest_mappings[manifest_id]), self.suspend_times
            )
            self.transfers[transfer_id] = transfer
            thread = threading.Thread(
                target=self._copy, args=(transfer,), name=f"fake-js-{transfer_id}", daemon=True
            )
            self._threads.append(thread)
        thread.start()
        return self.transfer_view(transfer_id)

    def transfer_view(self, transfer_id: str) -> dict[str, Any]:
        with self.lock:
            transfer = self.transfers.get(transfer_id)
            if transfer is None:
                raise FakeJetStreamError(f"unknown transfer {transfer_id}")
            view = dict(transfer.record)
            if not self.listing:
                view.pop("manifestId")
            return view

    def resume(self, transfer_id: str) -> None:
        with self.lock:
            transfer = self.transfers.get(transfer_id)
            if transfer is None or transfer.record["status"] != "suspended":
                raise FakeJetStreamError(f"transfer {transfer_id} is not suspended")
            transfer.record.update(status="pending", processing=True)
            transfer.resumed.set()

    def _set(self, transfer: _Transfer, **fields: Any) -> None:
        with self.lock:
            transfer.record.update(fields)

    def _copy(self, transfer: _Transfer) -> None:
        """The background copy: file by file, suspending or failing as steered."""
        self._set(transfer, status="sending")
        for dest, src in transfer.mappings.items():
            if self._stop.is_set():
                return
            if dest in transfer.done:
                continue
            if any(fnmatch.fnmatchcase(src, p) for p in self.error_paths):
                self._set(
                    transfer, status="error", processing=False, errorMessage=f"cannot send {src}"
                )
                return
            target = self.dest_root / dest.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.fake-js-part")
            shutil.copy2(src, tmp)
            os.replace(tmp, target)
            transfer.done.append(dest)
            if transfer.suspends_left > 0:
                transfer.suspends_left -= 1
                transfer.resumed.clear()
                self._set(transfer, status="suspended", processing=False)
                transfer.resumed.wait()
                self._set(transfer, status="sending")
        self._set(transfer, status="complete", processing=False)


class FakeServerCalls:
    """``api.server``: authentication."""

    def __init__(self, api: FakeApi) -> None:
        self._api = api

    def auth(self, username: str, password: str) -> None:
        self._api.check_connected("auth")
        if self._api.fake.users.get(username) != password:
            raise FakeJetStreamError("authentication failed")
        self._api.authed = True


class FakeSend:
    """``api.send``: manifests, destinations and transfers."""

    def __init__(self, api: FakeApi) -> None:
        self._api = api
        self._fake = api.fake

    def createManifest(self, mappings: dict[str, str]) -> dict[str, Any]:
        self._api.check_authed("createManifest")
        return self._fake.create_manifest(mappings)

    def getManifest(self, manifest: Any) -> dict[str, Any]:
        self._api.check_authed("getManifest")
        return self._fake.get_manifest(_id_of(manifest, "manifestId"))

    def getManifests(self) -> list[dict[str, Any]]:
        self._api.check_authed("getManifests")
        with self._fake.lock:
            return [self._fake.manifest_view(m) for m in self._fake.manifests]

    def deleteManifest(self, manifest: Any) -> None:
        self._api.check_authed("deleteManifest")
        self._fake.delete_manifest(_id_of(manifest, "manifestId"))

    def createDestination(
        self,
        destinationAddress: str,
        destinationPort: int = 8886,
    ) -> dict[str, Any]:
        self._api.check_authed("createDestination")
        return {
            "destinationId": "42",
            "destinationAddress": destinationAddress,
            "destinationPort": destinationPort,
            "destinationIP": "127.0.0.1",
        }

    def createTransfer(self, destination: dict[str, Any], manifest: Any) -> dict[str, Any]:
        self._api.check_authed("createTransfer")
        return self._fake.create_transfer(destination, _id_of(manifest, "manifestId"))

    def getTransfer(self, transfer: Any) -> dict[str, Any]:
        self._api.check_authed("getTransfer")
        return self._fake.transfer_view(_id_of(transfer, "transferId"))

    def resumeTransfer(self, transfer: Any) -> None:
        self._api.check_authed("resumeTransfer")
        self._fake.resume(_id_of(transfer, "transferId"))


class FakeSendWithListing(FakeSend):
    """``api.send`` of a server that also lists its transfers (an undocumented extra)."""

    def getTransfers(self) -> list[dict[str, Any]]:
        self._api.check_authed("getTransfers")
        with self._fake.lock:
            return [self._fake.transfer_view(t) for t in self._fake.transfers]


class FakeApi:
    """``JetStream().api(host, port)``: one connection to the fake server."""

    def __init__(self, fake: FakeJetStreamServer, host: str, port: int) -> None:
        self.fake = fake
        self.address = (host, port)
        self.connected = False
        self.authed = False
        self.server = FakeServerCalls(self)
        self.send: FakeSend = FakeSendWithListing(self) if fake.listing else FakeSend(self)

    def connect(self) -> None:
        self.fake.record("connect")
        if self.fake.refuse_connections:
            raise ConnectionRefusedError(111, "Connection refused")
        self.connected = True

    def disconnect(self) -> None:
        self.fake.record("disconnect")
        self.connected = self.authed = False

    def __enter__(self) -> FakeApi:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disconnect()

    def check_connected(self, name: str) -> None:
        self.fake.record(name)
        while self.fake.stalled.is_set() and not self.fake._stop.is_set():
            time.sleep(0.01)  # a hung server: the call does not return
        if not self.connected:
            raise ConnectionError("not connected")

    def check_authed(self, name: str) -> None:
        self.check_connected(name)
        if not self.authed:
            raise FakeJetStreamError("not authenticated")
