"""The daemon's log lines, written to stderr by a thread of their own.

A line is formatted (and redacted) where it is logged; only the write waits in a queue.
Whoever reads the daemon's stderr — journald past its rate limit, a full pipe, a paused
``docker logs``, a terminal on hold — can stall a write, and a write on the event loop
stalls every folder, the API calls and the health endpoints with it. The queue is bounded:
past ``max_queued`` lines, lines are dropped, counted and the count said in the next line
that fits. ``flush()`` (``logging.shutdown`` at exit calls it) waits until the queue is
written, at most FLUSH_WAIT_S; a kill -9 loses what is still queued, normally nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import TextIO

MAX_QUEUED = 20_000  # lines: about 10 MB of JSON lines at their longest
FLUSH_WAIT_S = 5.0


class BackgroundWriter(logging.Handler):
    """A StreamHandler whose writes happen in a thread; see the module docstring."""

    def __init__(self, stream: TextIO, max_queued: int = MAX_QUEUED) -> None:
        super().__init__()
        self.stream = stream
        self._lines: queue.Queue[str | None] = queue.Queue(max_queued)
        self._dropped = 0  # only emit() touches it, under the handler's lock
        self._thread = threading.Thread(target=self._write_lines, name="log-writer", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
        except Exception:  # logging's own contract: report, never raise
            self.handleError(record)
            return
        if self._dropped and self._offer(self._dropped_line()):
            self._dropped = 0
        if not self._offer(line):
            self._dropped += 1

    def flush(self) -> None:
        """Wait until every queued line is written (at most FLUSH_WAIT_S)."""
        if not self._thread.is_alive():
            return
        done = self._lines.all_tasks_done
        deadline = time.monotonic() + FLUSH_WAIT_S
        with done:
            while self._lines.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                done.wait(left)

    def close(self) -> None:
        self.flush()
        self._offer(None)  # the thread ends once the queue before it is written
        super().close()

    def _offer(self, line: str | None) -> bool:
        try:
            self._lines.put_nowait(line)
        except queue.Full:
            return False
        return True

    def _dropped_line(self) -> str:
        record = logging.LogRecord(
            "jetwatch.logs",
            logging.WARNING,
            __file__,
            0,
            f"log_lines_dropped: {self._dropped} lines, the log reader did not take them in time",
            None,
            None,
        )
        return self.format(record) + "\n"

    def _write_lines(self) -> None:
        lines, stream = self._lines, self.stream
        while True:
            line = lines.get()
            try:
                if line is None:
                    return
                stream.write(line)
                if lines.empty():
                    stream.flush()
            except (OSError, ValueError):
                pass  # stderr closed or broken: there is nobody left to tell
            finally:
                lines.task_done()
