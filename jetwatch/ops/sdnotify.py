"""systemd's sd_notify protocol (READY, STATUS, STOPPING, WATCHDOG) spoken without a dependency."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Mapping

import structlog

__all__ = ["SdNotifier", "run_watchdog"]

log = structlog.get_logger(__name__)


def _socket_address(value: str) -> str | None:
    if value.startswith("@"):
        return "\0" + value[1:]  # Linux abstract namespace
    if value.startswith("/"):
        return value
    if value:
        # e.g. "vsock:..." from newer systemd inside VMs: not spoken here.
        log.debug("sd_notify_socket_unsupported", notify_socket=value)
    return None


class SdNotifier:
    """Sends datagrams to $NOTIFY_SOCKET; without one every call is a no-op returning False."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog_usec = env.get("WATCHDOG_USEC", "")
        self._watchdog_pid = env.get("WATCHDOG_PID", "")
        self._sock: socket.socket | None = None
        self._failure_logged = False

    @property
    def enabled(self) -> bool:
        """True when systemd (or a test) gave us a socket to talk to."""
        return self._address is not None

    def notify(self, **fields: object) -> bool:
        """Send ``KEY=value`` lines (keys upper-cased); True when the datagram was sent."""
        if self._address is None or not fields:
            return False
        # A newline would start a new assignment in the protocol.
        lines = (f"{k.upper()}={' '.join(str(v).splitlines())}" for k, v in fields.items())
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                # Never block the event loop: a full receive queue drops this message instead.
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(lines).encode(), self._address)
        except OSError as exc:
            if not self._failure_logged:
                self._failure_logged = True
                log.debug("sd_notify_failed", error=str(exc))
            return False
        return True

    def ready(self) -> bool:
        """Tell systemd start-up is complete (Type=notify)."""
        return self.notify(READY=1)

    def stopping(self) -> bool:
        """Tell systemd a clean shutdown has begun."""
        return self.notify(STOPPING=1)

    def status(self, text: str) -> bool:
        """Set the one-line status shown by ``systemctl status``."""
        return self.notify(STATUS=text)

    def watchdog(self) -> bool:
        """Feed the service watchdog."""
        return self.notify(WATCHDOG=1)

    def watchdog_interval_s(self) -> float | None:
        """Half of WATCHDOG_USEC in seconds when the watchdog is meant for this process."""
        if self._watchdog_pid and self._watchdog_pid != str(os.getpid()):
            return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        return usec / 2 / 1e6 if usec > 0 else None

    def close(self) -> None:
        """Close the sending socket (a later call opens a new one)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


async def run_watchdog(notifier: SdNotifier, is_healthy: Callable[[], bool]) -> None:
    """Feed the watchdog every interval while ``is_healthy()``; return at once if none is set.

    Withholding the ping while unhealthy is the point: systemd then kills and restarts
    a process whose loop still runs but whose work is wedged.
    """
    interval_s = notifier.watchdog_interval_s()
    if interval_s is None or not notifier.enabled:
        log.debug("watchdog_disabled")
        return
    log.debug("watchdog_started", interval_s=interval_s)
    healthy_before = True
    while True:
        healthy = is_healthy()
        if healthy:
            notifier.watchdog()
        if healthy != healthy_before:
            log.warning("watchdog_withheld" if not healthy else "watchdog_resumed")
            healthy_before = healthy
        await asyncio.sleep(interval_s)
