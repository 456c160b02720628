"""Blocking file work of a transfer (runs in worker threads): copy one file, list a folder."""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO
from uuid import uuid4

TEMP_SUFFIX = ".jetemu-part"
MAX_CHUNK_BYTES = 1024 * 1024


class OutcomeKind(StrEnum):
    """What happened to one file; the three tallies of ``transferProgress``."""

    TRANSFERRED = "transferred"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """The result of one file (or of an object that could not be expanded into files)."""

    relative_path: str
    kind: OutcomeKind
    size_bytes: int
    error_code: str = ""
    error: str = ""


class CopyCancelledError(Exception):
    """The emulator is stopping, or the job dropped its work (paused): the copy was
    abandoned and its temporary file removed."""


GROWTH_POLL_S = 0.1  # how often a followed growing object is looked at again


class Throttle:
    """Limits the bytes per second of one transfer by sleeping between chunks."""

    def __init__(self, rate_bps: int, stop: threading.Event) -> None:
        self.rate_bps = rate_bps
        self._stop = stop
        self._sent_bytes = 0
        self._start_s = time.monotonic()
        # Small chunks when throttled, so progress moves in steps of about 50 ms.
        self.chunk_bytes = (
            MAX_CHUNK_BYTES if rate_bps <= 0 else max(512, min(MAX_CHUNK_BYTES, rate_bps // 20))
        )

    def consume(self, size_bytes: int) -> None:
        """Account for ``size_bytes`` sent; sleep until the rate allows more."""
        if self._stop.is_set():
            raise CopyCancelledError
        if self.rate_bps <= 0:
            return
        self._sent_bytes += size_bytes
        delay_s = self._start_s + self._sent_bytes / self.rate_bps - time.monotonic()
        if delay_s > 0 and self._stop.wait(delay_s):
            raise CopyCancelledError

    def pause(self, seconds: float) -> None:
        """Wait ``seconds`` (following a growing object); raise when halted meanwhile."""
        if self._stop.wait(seconds):
            raise CopyCancelledError


def resolve(root: Path, relative_path: str) -> Path:
    """The path of ``relative_path`` (``/a/b``) under a profile root."""
    return root / relative_path.lstrip("/")


def same_file(dst: Path, src_stat: os.stat_result) -> bool:
    """Jet's "skipped" test: same size and mtime.

    mtimes are compared to the whole second, because filesystems differ in precision
    (FAT/SMB keep 2 s or 1 s) and a copy that kept the mtime must still count as the same.
    """
    try:
        dst_stat = dst.stat()
    except OSError:
        return False
    return (
        stat.S_ISREG(dst_stat.st_mode)
        and dst_stat.st_size == src_stat.st_size
        and dst_stat.st_mtime_ns // 1_000_000_000 == src_stat.st_mtime_ns // 1_000_000_000
    )


def list_directory(src_root: Path, dst_root: Path, relative_path: str) -> list[str]:
    """Relative paths of every file under a source folder, creating its folders at the
    destination (empty ones too). Raises OSError when the folder cannot be read."""
    base = resolve(src_root, relative_path)
    if not base.exists():
        raise FileNotFoundError(f"no such directory: {relative_path}")
    if not base.is_dir():
        raise NotADirectoryError(f"not a directory: {relative_path}")

    def fail(exc: OSError) -> None:
        raise exc

    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(base, onerror=fail):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(src_root)
        (dst_root / rel_dir).mkdir(parents=True, exist_ok=True)
        files.extend(
            "/" + (rel_dir / name).as_posix()
            for name in sorted(filenames)
            if not name.endswith(TEMP_SUFFIX)
        )
    return files


def copy_file(
    src_root: Path,
    dst_root: Path,
    relative_path: str,
    throttle: Throttle,
    *,
    expected_size_bytes: int = 0,
    injected_failure: bool = False,
    growing_idle_s: float | None = None,
) -> FileOutcome:
    """Copy one file keeping its relative path and mtime; skip it when already there.

    Without ``growing_idle_s`` the copy takes what exists when it starts (a file still being
    written arrives partial, as on Jet); with it, the copy follows the file until it has
    not grown for that long (a job with ``areGrowingObjects``), then finishes it.
    """
    src = resolve(src_root, relative_path)
    try:
        src_stat = src.stat()
    except FileNotFoundError:
        return _failed(relative_path, expected_size_bytes, "SOURCE_NOT_FOUND", "no such file")
    except OSError as exc:
        return _failed(relative_path, expected_size_bytes, "SOURCE_UNREADABLE", str(exc))
    if injected_failure:
        return _failed(relative_path, src_stat.st_size, "INJECTED_FAILURE", "fail_paths matched")
    if stat.S_ISDIR(src_stat.st_mode):
        reason = "source is a directory; send it with isDirectory true"
        return _failed(relative_path, 0, "SOURCE_IS_DIRECTORY", reason)
    if not stat.S_ISREG(src_stat.st_mode):
        return _failed(relative_path, 0, "SOURCE_NOT_A_FILE", "not a regular file")
    dst = resolve(dst_root, relative_path)
    if same_file(dst, src_stat):
        return FileOutcome(relative_path, OutcomeKind.SKIPPED, src_stat.st_size)
    try:
        written_bytes = _copy_contents(src, dst, src_stat, throttle, growing_idle_s)
    except OSError as exc:
        return _failed(relative_path, src_stat.st_size, "IO_ERROR", str(exc))
    return FileOutcome(relative_path, OutcomeKind.TRANSFERRED, written_bytes)


def _failed(relative_path: str, size_bytes: int, code: str, reason: str) -> FileOutcome:
    return FileOutcome(relative_path, OutcomeKind.FAILED, size_bytes, code, reason)


def _copy_contents(
    src: Path, dst: Path, src_stat: os.stat_result, throttle: Throttle, growing_idle_s: float | None
) -> int:
    """Write to a temporary name beside ``dst`` then rename, so readers never see a part."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".{uuid4().hex[:12]}{TEMP_SUFFIX}"
    written_bytes = 0
    try:
        with src.open("rb") as fin, tmp.open("wb") as fout:
            if growing_idle_s is None:
                written_bytes = _copy_bytes(fin, fout, throttle, src_stat.st_size)
            else:
                written_bytes, src_stat = _follow(fin, fout, throttle, src, growing_idle_s)
        os.chmod(tmp, stat.S_IMODE(src_stat.st_mode))
        os.utime(tmp, ns=(src_stat.st_atime_ns, src_stat.st_mtime_ns))
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return written_bytes


def _copy_bytes(fin: BinaryIO, fout: BinaryIO, throttle: Throttle, limit_bytes: int | None) -> int:
    """Copy from ``fin`` until EOF, or until ``limit_bytes`` were copied."""
    written_bytes = 0
    while limit_bytes is None or written_bytes < limit_bytes:
        size = throttle.chunk_bytes
        if limit_bytes is not None:
            size = min(size, limit_bytes - written_bytes)
        chunk = fin.read(size)
        if not chunk:
            break
        fout.write(chunk)
        written_bytes += len(chunk)
        throttle.consume(len(chunk))
    return written_bytes


def _follow(
    fin: BinaryIO, fout: BinaryIO, throttle: Throttle, src: Path, idle_s: float
) -> tuple[int, os.stat_result]:
    """Copy a growing object until it has been idle (same size and mtime) for ``idle_s``."""
    written_bytes = _copy_bytes(fin, fout, throttle, None)
    last = src.stat()
    idle_since = time.monotonic()
    while True:
        now = src.stat()
        if (now.st_size, now.st_mtime_ns) != (last.st_size, last.st_mtime_ns):
            last, idle_since = now, time.monotonic()
        if now.st_size > written_bytes:
            written_bytes += _copy_bytes(fin, fout, throttle, None)
            continue
        if time.monotonic() - idle_since >= idle_s:
            return written_bytes, now
        throttle.pause(GROWTH_POLL_S)
