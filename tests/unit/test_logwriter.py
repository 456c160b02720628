"""The daemon's log lines are written by a thread: a reader of stderr that stalls never
stalls the caller; lines keep their order; past the bound they are dropped and counted; a
normal exit writes everything. Real pipes, a real subprocess."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

import pytest

from jetwatch.logwriter import BackgroundWriter

TIMEOUT_S = 30.0
LINE = "x" * 200  # 10,000 of them are thirty times what a pipe holds


@pytest.fixture
def stalled_pipe() -> Iterator[tuple[TextIO, TextIO]]:
    """(writer, reader) of a pipe nobody reads until the test does."""
    r, w = os.pipe()
    writer, reader = os.fdopen(w, "w"), os.fdopen(r, "r")
    yield writer, reader
    for end in (writer, reader):
        end.close()


def make_logger(handler: logging.Handler) -> logging.Logger:
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(f"test.logwriter.{id(handler)}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger


def log_in_thread(logger: logging.Logger, count: int, prefix: str = "line") -> threading.Thread:
    thread = threading.Thread(
        target=lambda: [logger.info("%s %d %s", prefix, i, LINE) for i in range(count)],
        daemon=True,
    )
    thread.start()
    thread.join(TIMEOUT_S)
    return thread


def read_lines(reader: TextIO, until: str) -> list[str]:
    """Lines from the pipe up to and including the first one that starts with ``until``."""
    got: list[str] = []
    while not got or not got[-1].startswith(until):
        line = reader.readline()
        assert line, f"the pipe closed before {until!r}"
        got.append(line.rstrip("\n"))
    return got


def test_a_stalled_reader_does_not_stall_the_caller(
    stalled_pipe: tuple[TextIO, TextIO],
) -> None:
    writer, reader = stalled_pipe
    handler = BackgroundWriter(writer, max_queued=20_000)
    logger = make_logger(handler)

    thread = log_in_thread(logger, 10_000)
    assert not thread.is_alive()  # a StreamHandler here would wait for the reader forever

    logger.info("last")
    got = read_lines(reader, "last")
    assert [int(line.split()[1]) for line in got[:-1]] == list(range(10_000))  # all, in order
    handler.close()


def test_a_full_queue_drops_lines_and_says_how_many(stalled_pipe: tuple[TextIO, TextIO]) -> None:
    writer, reader = stalled_pipe
    handler = BackgroundWriter(writer, max_queued=100)
    logger = make_logger(handler)

    thread = log_in_thread(logger, 2_000)
    assert not thread.is_alive()
    got: list[str] = []
    reader_thread = threading.Thread(target=lambda: got.extend(read_lines(reader, "after")))
    reader_thread.start()
    handler.flush()  # the queue written: the next line has room for the note
    logger.info("after")
    reader_thread.join(TIMEOUT_S)

    numbered = [line for line in got if line.startswith("line ")]
    notes = [line for line in got if line.startswith("log_lines_dropped")]
    dropped = sum(int(note.split()[1]) for note in notes)
    assert dropped > 0
    assert len(numbered) + dropped == 2_000  # every line written or counted
    assert len(numbered) + len(notes) + 1 == len(got)
    assert got[-1] == "after"
    handler.close()


def test_a_normal_exit_writes_every_queued_line() -> None:
    """A real process logs through configure_logging(background=True) and exits at once."""
    script = (
        "import structlog\n"
        "from jetwatch.logs import configure_logging\n"
        "configure_logging('info', 'json', background=True)\n"
        "log = structlog.get_logger('jetwatch.test')\n"
        "for i in range(5000):\n"
        "    log.info('counted', i=i)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=True,
    )
    events = [json.loads(line) for line in done.stderr.splitlines()]
    assert [e["i"] for e in events] == list(range(5000))
    assert {e["event"] for e in events} == {"counted"}
