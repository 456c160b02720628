"""Run the daemon under cProfile in every thread; SIGUSR1 writes a tracemalloc snapshot.

Usage: ``python -m bench.scenarios._profiled --config F --out PREFIX [--tracemalloc]``.
On exit writes ``PREFIX.pstats`` and ``PREFIX.txt`` (top functions by cumulative and by
own time, all threads merged: scans and stats run in worker threads). SIGUSR2 drops what
was collected so far (to profile a steady state, such as idling, without the start-up).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import signal
import sys
import threading
import tracemalloc
from pathlib import Path
from types import FrameType
from typing import Any

_profiles: list[cProfile.Profile] = []
_lock = threading.Lock()
_main: list[cProfile.Profile] = []  # the main thread's profiler, replaced by SIGUSR2


def _profile_thread(frame: FrameType, event: str, arg: Any) -> None:
    # Installed by threading.setprofile: runs once per new thread, then cProfile takes over.
    profile = cProfile.Profile()
    with _lock:
        _profiles.append(profile)
    profile.enable()


def _write_memory(prefix: str) -> None:
    if not tracemalloc.is_tracing():
        return
    snapshot = tracemalloc.take_snapshot()
    current, peak = tracemalloc.get_traced_memory()
    lines = [f"traced now {current / 1e6:.1f} MB, peak {peak / 1e6:.1f} MB", ""]
    lines += [str(s) for s in snapshot.statistics("lineno")[:30]]
    lines.append("")
    for stat in snapshot.statistics("traceback")[:6]:
        lines.append(f"{stat.size / 1e6:.1f} MB in {stat.count} blocks")
        lines += ["    " + line for line in stat.traceback.format(limit=6)]
    Path(prefix + ".memory.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _restart(*_: object) -> None:
    # Signal handlers run in the main thread, so its profiler can be swapped here.
    _main[0].disable()
    _main[0] = cProfile.Profile()
    _main[0].enable()
    with _lock:
        for profile in _profiles:
            profile.clear()


def _write_stats(prefix: str, main: cProfile.Profile) -> None:
    stats = pstats.Stats(main)
    for profile in _profiles:
        try:
            stats.add(profile)
        except (TypeError, ValueError):  # a thread that never ran Python code
            continue
    stats.dump_stats(prefix + ".pstats")
    out = io.StringIO()
    for order in ("cumulative", "tottime"):
        stats.stream = out
        out.write(f"==== sorted by {order} ====\n")
        stats.sort_stats(order).print_stats(45)
    Path(prefix + ".txt").write_text(out.getvalue(), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args()
    from jetwatch import logs
    from jetwatch.app.daemon import Daemon
    from jetwatch.config.load import load_settings

    settings = load_settings(Path(args.config))
    logs.configure_logging(settings.log.level, settings.log.format)

    if args.tracemalloc:
        tracemalloc.start(6)
    signal.signal(signal.SIGUSR1, lambda *_: _write_memory(args.out))
    threading.setprofile(_profile_thread)
    _main.append(cProfile.Profile())
    signal.signal(signal.SIGUSR2, _restart)
    _main[0].enable()
    try:
        # In process, without run_daemon's hard exit: the stats must be written at the end.
        code = asyncio.run(Daemon(settings, config_path=Path(args.config)).run())
    finally:
        _main[0].disable()
        _write_stats(args.out, _main[0])
    return code


if __name__ == "__main__":
    sys.exit(main())
