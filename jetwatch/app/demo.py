"""``jetwatch demo``: the daemon against the embedded emulator on a temp dir, end to end.

Drops sample files (a nested folder, a file that keeps growing for a while, a temp file
that must be ignored), shows progress, verifies every copy byte for byte and prints a
summary. Exit 0 only when everything arrived exactly once and the temp file did not.
"""

from __future__ import annotations

import asyncio
import contextlib
import filecmp
import json
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
from pydantic import SecretStr

from jetwatch import logs
from jetwatch.app.daemon import Daemon
from jetwatch.config.settings import (
    FolderSettings,
    HttpSettings,
    JetSettings,
    LedgerSettings,
    Settings,
)
from jetwatch.emulators.jet import EmulatorConfig, EmulatorServer
from jetwatch.emulators.jet.bootstrap import bootstrap_manual_job

TIMEOUT_S = 90.0
GROW_S = 4.0


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def sample_files(src: Path) -> dict[str, bytes]:
    """Files dropped at once (relative path → content)."""
    return {
        "hello.txt": b"hello from jetwatch\n",
        "shoot-01/A001_C001.mov": os.urandom(256 * 1024),
        "shoot-01/A001_C002.mov": os.urandom(128 * 1024),
        "shoot-01/audio/take 1 é.wav": os.urandom(64 * 1024),
    }


async def grow_file(path: Path, seconds: float) -> int:
    """Append to a file for ``seconds``, like a camera or an encoder writing it."""
    written = 0
    deadline = time.monotonic() + seconds
    with path.open("wb") as fh:
        while time.monotonic() < deadline:
            chunk = os.urandom(32 * 1024)
            fh.write(chunk)
            fh.flush()
            written += len(chunk)
            await asyncio.sleep(0.25)
    return written


async def run_demo(*, keep: bool = False) -> int:
    logs.configure_logging("warning", "console" if sys.stderr.isatty() else "json")
    with tempfile.TemporaryDirectory(prefix="jetwatch-demo-") as tmp:
        return await _demo(Path(tmp), keep=keep)


async def _demo(tmp: Path, *, keep: bool) -> int:
    src, dst = tmp / "in", tmp / "out"
    src.mkdir()
    dst.mkdir()
    started = time.monotonic()
    async with EmulatorServer(EmulatorConfig(port=0, state_dir=tmp / "emulator")) as emu:
        say(f"emulator at {emu.url}")
        job_id = await bootstrap_manual_job(emu.url, "demo", "demo-secret", src, dst, "Demo Job")
        say(f"manual job {job_id}: {src} -> {dst}")
        settings = _settings(emu.url, src, tmp)
        daemon = Daemon(settings)
        task = asyncio.create_task(daemon.run(), name="demo-daemon")
        drive = asyncio.create_task(_drive(daemon, emu.url, src, dst, started), name="demo")
        try:
            # Ctrl+C reaches the daemon's handler: the demo must not wait for it in vain.
            await asyncio.wait({task, drive}, return_when=asyncio.FIRST_COMPLETED)
            ok = _outcome(drive)
            if keep and ok:
                await _keep_running(daemon, emu.url, src, dst, tmp)
        finally:
            drive.cancel()
            daemon.request_stop()
            code = await task
    if code != 0:
        say(f"daemon exited with {code}")
    return 0 if ok and code == 0 else 1


def _outcome(drive: asyncio.Task[bool]) -> bool:
    if not drive.done():
        say("FAILED: the daemon stopped before the demo finished")
        return False
    exc = None if drive.cancelled() else drive.exception()
    if exc is not None:
        say(f"FAILED: {exc}")
    return exc is None and not drive.cancelled() and drive.result()


def _settings(base_url: str, src: Path, tmp: Path) -> Settings:
    return Settings(
        jet=JetSettings(
            base_url=base_url,
            client_id="demo",
            client_secret=SecretStr("demo-secret"),
            poll_min_seconds=0.5,
        ),
        ledger=LedgerSettings(path=tmp / "ledger.db"),
        http=HttpSettings(listen="127.0.0.1:0"),
        folders=[
            FolderSettings(
                path=src,
                job="Demo Job",
                settle_seconds=1.0,
                batch_linger_seconds=0.5,
                max_wait_seconds=2.0,
            )
        ],
    )


async def _drive(daemon: Daemon, base_url: str, src: Path, dst: Path, started: float) -> bool:
    await _wait_for(
        lambda: (
            bool(daemon.intakes) and all(i.health.first_scan_done for i in daemon.intakes.values())
        ),
        "daemon ready",
    )
    files = sample_files(src)
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    (src / "shoot-01" / "upload.part").write_bytes(b"half a file")
    (src / ".hidden-rsync.XyZ123").write_bytes(b"rsync temp")
    say(
        f"dropped {len(files)} files (+2 temp files that must be ignored); "
        f"growing 'growing.mxf' for {GROW_S:.0f} s"
    )
    grower = asyncio.create_task(grow_file(src / "growing.mxf", GROW_S))
    expected = [*files, "growing.mxf"]
    seen: set[str] = set()
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        arrived = (
            {rel for rel in expected if _same(src / rel, dst / rel)}
            if grower.done()
            else {rel for rel in files if _same(src / rel, dst / rel)}
        )
        for rel in sorted(arrived - seen):
            say(f"delivered {rel}")
        seen |= arrived
        if grower.done() and seen >= set(expected):
            break
        await asyncio.sleep(0.2)
    await grower
    return await _summary(base_url, src, dst, expected, started)


async def _summary(
    base_url: str, src: Path, dst: Path, expected: list[str], started: float
) -> bool:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base_url}/_emulator/deliveries") as resp,
    ):
        deliveries = (await resp.json())["items"]
    sent = [o["relativePath"] for d in deliveries for o in d["objects"]]
    missing = [rel for rel in expected if not _same(src / rel, dst / rel)]
    duplicates = sorted({p for p in sent if sent.count(p) > 1})
    leaked = [p for p in sent if p.endswith(".part") or "/." in p]
    total = sum((src / rel).stat().st_size for rel in expected)
    say(
        f"summary: {len(expected) - len(missing)}/{len(expected)} files, {total} bytes, "
        f"{len(deliveries)} deliveries, {time.monotonic() - started:.1f} s"
    )
    for label, bad in (("missing", missing), ("sent twice", duplicates), ("temp sent", leaked)):
        if bad:
            say(f"FAILED: {label}: {bad}")
    return not (missing or duplicates or leaked)


async def _keep_running(daemon: Daemon, base_url: str, src: Path, dst: Path, tmp: Path) -> None:
    config = _write_config(daemon.settings, daemon.ops_url, tmp / "jetwatch-demo.toml")
    say(f"drop files into {src}; they arrive in {dst}")
    if daemon.ops_url:
        say(f"metrics {daemon.ops_url}/metrics  status {daemon.ops_url}/status")
    say(f"emulator {base_url}  (deliveries: {base_url}/_emulator/deliveries)")
    say(f"config {config}; in another terminal: {_command()} status --config {config}")
    say("Ctrl+C to stop")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    reporter = asyncio.create_task(_report_deliveries(src, dst), name="demo-report")
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await stop.wait()
    finally:
        reporter.cancel()


async def _report_deliveries(src: Path, dst: Path) -> None:
    """Say each file that arrives at the destination complete, as it arrives."""
    seen = await asyncio.to_thread(_arrived, src, dst, set())
    while True:
        await asyncio.sleep(0.3)
        for rel, size in sorted(await asyncio.to_thread(_arrived, src, dst, seen)):
            say(f"delivered {rel} ({size} bytes)")


def _arrived(src: Path, dst: Path, seen: set[tuple[str, int]]) -> set[tuple[str, int]]:
    """(relative path, size) of complete copies at ``dst`` not in ``seen`` (added to it)."""
    new = set()
    for path in dst.rglob("*"):
        rel = path.relative_to(dst)
        if path.is_file() and not rel.name.startswith(".") and _same(src / rel, path):
            item = (str(rel), path.stat().st_size)
            if item not in seen:
                new.add(item)
    seen |= new
    return new


def _write_config(settings: Settings, ops_url: str | None, path: Path) -> Path:
    """The demo's settings as a config file, so ``jetwatch status --config`` finds it all."""
    folder = settings.folders[0]
    secret = settings.jet.client_secret
    listen = ops_url.removeprefix("http://") if ops_url else "127.0.0.1:0"
    text = "\n".join(
        [
            "# jetwatch demo: the embedded emulator's throwaway client",
            "[jet]",
            f"base_url = {json.dumps(settings.jet.base_url)}",
            f"client_id = {json.dumps(settings.jet.client_id)}",
            f"client_secret = {json.dumps(secret.get_secret_value() if secret else '')}",
            "[ledger]",
            f"path = {json.dumps(str(settings.ledger.path))}",
            "[http]",
            f"listen = {json.dumps(listen)}",
            "[[folders]]",
            f"path = {json.dumps(str(folder.path))}",
            f"job = {json.dumps(folder.job)}",
            "",
        ]
    )
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def _command() -> str:
    """How this jetwatch was started, for a command line people can paste."""
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) == "jetwatch":
        return shlex.quote(os.path.abspath(argv0))
    return f"{shlex.quote(sys.executable)} -m jetwatch"


def _same(a: Path, b: Path) -> bool:
    try:
        return b.is_file() and filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


async def _wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
