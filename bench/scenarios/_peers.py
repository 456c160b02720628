"""Peer watchers run as child processes: raw ``watchfiles.awatch``, ``inotifywait``, and
raw ``inotify`` (the kernel's events read directly through libc, ROOT only, not its
subdirectories: the floor of noticing a file).

Usage: ``python -m bench.scenarios._peers watchfiles|inotifywait|inotify ROOT [--per-file]``.
Speaks JSON lines on stdout: ``{"kind": "ready"}`` once the watch is in place, then
``seen`` lines (with ``--per-file``), and a ``summary`` when stopped with SIGTERM: how
many distinct files it reported, when the first and the last report came.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
from typing import Any

from watchfiles import Change, awatch

SUFFIX = ".dat"  # the bench's files; directories and other names are not counted


def emit(kind: str, **data: Any) -> None:
    print(json.dumps({"kind": kind, **data}), flush=True)


def inotifywait_available() -> bool:
    return shutil.which("inotifywait") is not None


class Tally:
    """Distinct files reported, and when."""

    def __init__(self, root: str, per_file: bool) -> None:
        self.prefix = root.rstrip("/") + "/"
        self.per_file = per_file
        self.seen: set[str] = set()
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.reports = 0

    def note(self, path: str, t: float) -> None:
        if not path.endswith(SUFFIX) or path in self.seen:
            return
        self.seen.add(path)
        self.first_t = self.first_t or t
        self.last_t = t
        if self.per_file:
            emit("seen", p=path.removeprefix(self.prefix), t=t)

    def summary(self) -> None:
        emit("summary", seen=len(self.seen), first_t=self.first_t, last_t=self.last_t,
             reports=self.reports)  # fmt: skip


async def watch_with_watchfiles(root: str, tally: Tally, timeout_ms: int = 200) -> None:
    """awatch with its defaults (debounce 1600 ms, step 50 ms), as a user would call it;
    it wakes every ``timeout_ms`` (its default is 5,000) to notice a stop."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    ready = False
    async for changes in awatch(
        root, stop_event=stop, yield_on_timeout=True, rust_timeout=timeout_ms
    ):
        if not ready:
            ready = True
            emit("ready")  # the first (timeout) yield comes after the watches exist
        now = time.time()
        tally.reports += 1 if changes else 0
        for change, path in changes:
            if change is not Change.deleted:
                tally.note(path, now)


def watch_with_inotifywait(root: str, tally: Tally) -> None:
    """``inotifywait -m -r -e close_write``; each line is timed when it reaches us."""
    proc = subprocess.Popen(
        ["inotifywait", "-m", "-r", "-e", "close_write", "--format", "%w%f", root],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    assert proc.stderr is not None
    assert proc.stdout is not None
    for line in proc.stderr:
        if "Watches established" in line:
            emit("ready")
            break
    for line in proc.stdout:
        tally.reports += 1
        tally.note(line.rstrip("\n"), time.time())
    proc.wait()


IN_CLOSE_WRITE, IN_MOVED_TO = 0x08, 0x80
EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name


def watch_with_raw_inotify(root: str, tally: Tally) -> None:
    """inotify_init1 + inotify_add_watch(ROOT, IN_CLOSE_WRITE | IN_MOVED_TO) via libc; each
    event is timed when read (select wakes at once, no debounce)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fd = libc.inotify_init1(os.O_CLOEXEC)
    if fd < 0 or libc.inotify_add_watch(fd, root.encode(), IN_CLOSE_WRITE | IN_MOVED_TO) < 0:
        raise OSError(ctypes.get_errno(), "inotify")
    stop: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    emit("ready")
    while not stop:
        readable, _, _ = select.select([fd], [], [], 0.2)
        if not readable:
            continue
        data, now = os.read(fd, 65536), time.time()
        offset = 0
        while offset < len(data):
            _wd, _mask, _cookie, length = EVENT.unpack_from(data, offset)
            start = offset + EVENT.size
            name = data[start : start + length].rstrip(b"\0").decode("utf-8", "replace")
            offset = start + length
            tally.reports += 1
            tally.note(os.path.join(root, name), now)
    os.close(fd)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("tool", choices=["watchfiles", "inotifywait", "inotify"])
    parser.add_argument("root")
    parser.add_argument("--per-file", action="store_true")
    parser.add_argument("--timeout-ms", type=int, default=200, help="watchfiles' rust_timeout")
    args = parser.parse_args()
    root = os.path.abspath(args.root)
    tally = Tally(root, args.per_file)
    try:
        if args.tool == "watchfiles":
            asyncio.run(watch_with_watchfiles(root, tally, args.timeout_ms))
        elif args.tool == "inotify":
            watch_with_raw_inotify(root, tally)
        else:
            watch_with_inotifywait(root, tally)
    finally:
        tally.summary()
    return 0


if __name__ == "__main__":
    sys.exit(main())
