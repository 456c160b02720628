"""Delivery progress from the back end's counts: fraction, rate, ETA, the last hour per folder."""

from __future__ import annotations

import pytest

from jetwatch.domain.progress import HISTORY_MINUTES, RATE_WINDOW_S, ProgressBoard
from jetwatch.domain.target import Progress

T0 = 1_700_000_000.0


def running(transferred: int, bytes_done: int, skipped: int = 0) -> Progress:
    return Progress(False, False, "IN_PROGRESS", transferred, skipped, 0, bytes_done)


def observe(board: ProgressBoard, now: float, p: Progress, *, bytes_total: int = 1000):
    return board.observe(
        7, folder="in", handle="d-1", files=10, bytes_total=bytes_total, progress=p,
        now=now, wall=T0 + now,
    )  # fmt: skip


def test_rate_and_eta_come_from_the_change_of_the_counts() -> None:
    """Two polls 2 s apart, 200 bytes more: 100 B/s, 600 bytes left → 6 s."""
    board = ProgressBoard()
    first = observe(board, 10.0, running(1, 200))
    assert first.bytes_per_s is None
    assert first.eta_s is None
    later = observe(board, 12.0, running(4, 400))
    assert later.bytes_per_s == pytest.approx(100.0)
    assert later.files_per_s == pytest.approx(1.5)
    assert later.eta_s == pytest.approx(6.0)
    assert later.fraction == pytest.approx(0.4)
    assert board.in_flight() == {7: later}


def test_without_bytes_the_files_give_fraction_and_eta() -> None:
    """A back end that reports no bytes (an IM run): counts of files only."""
    board = ProgressBoard()
    observe(board, 0.0, running(2, 0), bytes_total=0)
    p = observe(board, 4.0, running(4, 0, skipped=2), bytes_total=0)
    assert p.files_done == 6
    assert p.fraction == pytest.approx(0.6)
    assert p.bytes_per_s == 0
    assert p.eta_s == pytest.approx(4 / 1.0)


def test_nothing_moving_means_no_rate_and_old_polls_leave_the_window() -> None:
    """Polls with the same counts give no rate; the rate covers only the last window."""
    board = ProgressBoard()
    observe(board, 0.0, running(0, 0))
    assert observe(board, 5.0, running(0, 0)).bytes_per_s is None
    observe(board, 6.0, running(5, 500))
    late = observe(board, 6.0 + RATE_WINDOW_S + 10, running(6, 600))
    # The polls at 0 and 5 s fell out: (600 - 500) over the 70 s since the poll at 6 s.
    assert late.bytes_per_s == pytest.approx(100 / (RATE_WINDOW_S + 10))


def test_finished_deliveries_fill_the_minutes_of_the_last_hour() -> None:
    """finish() leaves the board and counts files and bytes in the minute it happened."""
    board = ProgressBoard()
    observe(board, 0.0, running(1, 10))
    board.finish(7, folder="in", files=10, size=1000, wall=T0)
    board.finish(8, folder="in", files=5, size=500, wall=T0 + 1)
    board.finish(9, folder="in", files=1, size=1, wall=T0 + 120)
    assert board.in_flight() == {}
    minutes = board.minutes("in", T0 + 120)
    assert len(minutes.files) == HISTORY_MINUTES
    assert minutes.files[-1] == 1
    assert minutes.files[-3] == 15
    assert minutes.bytes[-3] == 1500
    assert minutes.first_minute_at == (int((T0 + 120) // 60) - HISTORY_MINUTES + 1) * 60
    assert sum(board.minutes("in", T0 + 3 * 3600).files) == 0
    assert board.minutes("other", T0).files == (0,) * HISTORY_MINUTES
    assert board.folders() == {"in"}


def test_retain_and_forget_drop_what_is_no_longer_in_flight() -> None:
    board = ProgressBoard()
    observe(board, 0.0, running(1, 1))
    board.retain({7})
    assert 7 in board.in_flight()
    board.retain(set())
    assert board.in_flight() == {}
    observe(board, 0.0, running(1, 1))
    board.forget(7)
    assert board.in_flight() == {}
