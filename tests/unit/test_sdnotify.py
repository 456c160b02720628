"""Tests for jetwatch.ops.sdnotify against real AF_UNIX datagram sockets."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jetwatch.ops.sdnotify import SdNotifier, run_watchdog

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs AF_UNIX")


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound in tmp_path, and the NOTIFY_SOCKET value naming it."""
    path = tmp_path / "n.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    yield sock, str(path)
    sock.close()


@pytest.fixture
def abstract_receiver() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket in the abstract namespace, and its "@name" NOTIFY_SOCKET value."""
    name = f"jetwatch-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.setblocking(False)
    yield sock, "@" + name
    sock.close()


async def _recv(sock: socket.socket, timeout_s: float = 10.0) -> str:
    data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 4096), timeout_s)
    return data.decode()


def _pending(sock: socket.socket) -> list[str]:
    """Every datagram already queued on the socket, without waiting."""
    out: list[str] = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_messages_reach_a_path_socket(receiver: tuple[socket.socket, str]) -> None:
    """READY, STATUS, STOPPING and WATCHDOG arrive as the protocol's KEY=value datagrams."""
    sock, address = receiver
    notifier = SdNotifier({"NOTIFY_SOCKET": address})
    assert notifier.enabled
    assert notifier.ready()
    assert notifier.status("scanning /srv/ingest\nsecond line")
    assert notifier.watchdog()
    assert notifier.stopping()
    assert notifier.notify(status="x", mainpid=42)
    notifier.close()
    assert _pending(sock) == [
        "READY=1",
        "STATUS=scanning /srv/ingest second line",
        "WATCHDOG=1",
        "STOPPING=1",
        "STATUS=x\nMAINPID=42",
    ]


def test_abstract_namespace_socket(abstract_receiver: tuple[socket.socket, str]) -> None:
    """A NOTIFY_SOCKET starting with "@" addresses the abstract namespace."""
    sock, address = abstract_receiver
    assert SdNotifier({"NOTIFY_SOCKET": address}).ready()
    assert _pending(sock) == ["READY=1"]


def test_without_socket_every_call_is_a_noop() -> None:
    """With no NOTIFY_SOCKET nothing is sent and every call returns False."""
    notifier = SdNotifier({})
    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.status("x")
    assert not notifier.stopping()
    assert not notifier.watchdog()
    assert not SdNotifier({"NOTIFY_SOCKET": "vsock:2:1234"}).ready()


def test_send_errors_never_raise(tmp_path: Path) -> None:
    """A socket path nobody listens on makes calls return False instead of raising."""
    notifier = SdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.enabled
    assert not notifier.ready()
    assert not notifier.status("still fine")


@pytest.mark.parametrize(
    ("env", "expected_s"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected_s: float | None) -> None:
    """The interval is half of WATCHDOG_USEC, only when the watchdog is meant for this pid."""
    assert SdNotifier(env).watchdog_interval_s() == expected_s


async def test_watchdog_pings_while_healthy(receiver: tuple[socket.socket, str]) -> None:
    """A healthy process sends WATCHDOG=1 repeatedly at the configured cadence."""
    sock, address = receiver
    notifier = SdNotifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "20000"})
    task = asyncio.create_task(run_watchdog(notifier, lambda: True))
    try:
        pings = [await _recv(sock) for _ in range(3)]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert pings == ["WATCHDOG=1"] * 3


async def test_watchdog_withheld_while_unhealthy(receiver: tuple[socket.socket, str]) -> None:
    """No WATCHDOG=1 is sent while unhealthy; pings resume once healthy again."""
    sock, address = receiver
    notifier = SdNotifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "20000"})
    checks = 0
    healthy = False
    checked_enough = asyncio.Event()

    def is_healthy() -> bool:
        nonlocal checks
        checks += 1
        if checks >= 5:
            checked_enough.set()
        return healthy

    task = asyncio.create_task(run_watchdog(notifier, is_healthy))
    try:
        await asyncio.wait_for(checked_enough.wait(), 10)
        assert _pending(sock) == []
        healthy = True
        assert await _recv(sock) == "WATCHDOG=1"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_watchdog_returns_when_not_configured() -> None:
    """Without WATCHDOG_USEC (or without a socket) the component ends at once."""
    await asyncio.wait_for(run_watchdog(SdNotifier({}), lambda: True), 5)
    await asyncio.wait_for(run_watchdog(SdNotifier({"WATCHDOG_USEC": "20000"}), lambda: True), 5)
