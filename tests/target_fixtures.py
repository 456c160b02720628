"""Helpers for end-to-end tests of the Integration Manager and JetStream targets.

The daemon runs as for Jet (``running_daemon`` in-process, or ``DaemonProcess``); the IM
emulator and the JetStream fake stand where the Jet emulator stands. Checks read what the
back end received: the IM emulator's ``/_emulator/runs``, the JetStream fake's transfers.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import pytest
from pydantic import SecretStr

from jetwatch.config import (
    DaemonSettings,
    FolderSettings,
    HttpSettings,
    JetSettings,
    LedgerSettings,
    LogSettings,
    Settings,
)
from jetwatch.emulator.im import ImEmulatorServer
from jetwatch.targets.settings import IntegrationManagerSettings, JetStreamSettings
from tests.fakes.jetstream import FakeJetStreamServer
from tests.im_helpers import IM_PASSWORD, IM_USER, ImFactory
from tests.pipeline_fixtures import FAST_FOLDER

# Only timings: no folder uses Jet, so no Jet credentials are needed.
FAST_CHECKS: dict[str, Any] = {"job_recheck_seconds": 0.5, "poll_min_seconds": 0.1}
FAST_POLLS: dict[str, Any] = {"poll_min_seconds": 0.1, "poll_max_seconds": 0.5}
JS_USER, JS_PASSWORD = "jsmith", "js-Pa55word-7f3c"


def target_settings(
    src: Path,
    ledger_path: Path,
    target: str,
    *,
    integration_manager: IntegrationManagerSettings | None = None,
    jetstream: JetStreamSettings | None = None,
    **folder: Any,
) -> Settings:
    """Settings for one folder of ``target`` with fast timings; ``folder`` overrides keys."""
    folder_args = {**FAST_FOLDER, "name": f"f-{src.parent.name}", "target": target, **folder}
    return Settings(
        jet=JetSettings(**FAST_CHECKS, poll_max_seconds=0.5),
        integration_manager=integration_manager,
        jetstream=jetstream,
        ledger=LedgerSettings(path=ledger_path),
        http=HttpSettings(listen="127.0.0.1:0"),
        log=LogSettings(level="warning"),
        daemon=DaemonSettings(shutdown_timeout_seconds=5.0),
        folders=[FolderSettings(path=src, **folder_args)],
    )


def im_section(server: ImEmulatorServer, config_id: str, **overrides: Any) -> dict[str, Any]:
    """The ``[integration_manager]`` keys for an emulator, as TOML would give them."""
    return {
        "base_url": server.url,
        "username": IM_USER,
        "password": IM_PASSWORD,
        "job_config": config_id,
        "max_retries": 5,
        **FAST_POLLS,
        **overrides,
    }


def js_section(**overrides: Any) -> JetStreamSettings:
    values: dict[str, Any] = {
        "username": JS_USER,
        "password": SecretStr(JS_PASSWORD),
        "destination_host": "receiver.example",
        "manifest_poll_seconds": 0.02,
        **FAST_POLLS,
    }
    return JetStreamSettings(**{**values, **overrides})


class ImSetup(Protocol):
    async def __call__(self, **overrides: Any) -> tuple[ImEmulatorServer, str, Path, Path]: ...


@pytest.fixture
async def im_job(im_factory: ImFactory, tmp_path: Path) -> ImSetup:
    """Start an IM emulator copying ``tmp_path/source`` into ``tmp_path/dest``; a job config."""

    async def start(**overrides: Any) -> tuple[ImEmulatorServer, str, Path, Path]:
        src, dst = tmp_path / "source", tmp_path / "dest"
        src.mkdir(exist_ok=True)
        dst.mkdir(exist_ok=True)
        server = await im_factory(output_dir=dst, source_root=src, **overrides)
        config_id = await create_job_config(server.url)
        return server, config_id, src, dst

    return start


async def im_call(base_url: str, method: str, path: str, body: Any = None) -> Any:
    """One logged-in call to the IM API (or the ``/_emulator/`` side door) that must succeed."""
    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        headers = {}
        if path.startswith("/api/"):
            credentials = {"username": IM_USER, "password": IM_PASSWORD}
            async with session.post(f"{base_url}/api/login", json=credentials) as response:
                headers["Authorization"] = f"Bearer {(await response.json())['access_token']}"
        async with session.request(method, base_url + path, json=body, headers=headers) as response:
            assert 200 <= response.status < 300, await response.text()
            return await response.json()


async def create_job_config(base_url: str, name: str = "ingest") -> str:
    config_id: str = (await im_call(base_url, "POST", "/api/jobconfigs", {"name": name}))["id"]
    return config_id


async def im_runs(server: ImEmulatorServer) -> list[dict[str, Any]]:
    """Every run the emulator received, with the files it was given."""
    items: list[dict[str, Any]] = (await im_call(server.url, "GET", "/_emulator/runs"))["items"]
    return items


def run_file_counts(runs: Iterable[dict[str, Any]], src: Path) -> Counter[str]:
    """How many runs were given each file (paths relative to ``src``)."""
    return Counter(str(Path(f).relative_to(src)) for run in runs for f in run["files"])


def run_duplicates(runs: Iterable[dict[str, Any]], src: Path) -> dict[str, int]:
    return {p: n for p, n in run_file_counts(runs, src).items() if n > 1}


@pytest.fixture
async def js_fake(tmp_path: Path) -> AsyncIterator[FakeJetStreamServer]:
    """A JetStream fake whose destination is ``tmp_path/dest``; stopped after the test."""
    dst = tmp_path / "dest"
    dst.mkdir(exist_ok=True)
    fake = FakeJetStreamServer(dst, users={JS_USER: JS_PASSWORD})
    yield fake
    await asyncio.to_thread(fake.stop)


def transfer_counts(fake: FakeJetStreamServer, src: Path) -> Counter[str]:
    """How many transfers carried each file (paths relative to ``src``)."""
    with fake.lock:
        mappings = [t.mappings for t in fake.transfers.values()]
    return Counter(str(Path(s).relative_to(src)) for m in mappings for s in m.values())


def transfer_states(fake: FakeJetStreamServer) -> Counter[str]:
    with fake.lock:
        return Counter(str(t.record["status"]) for t in fake.transfers.values())
