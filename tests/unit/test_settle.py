"""Tests of the settle decision, driven by a fake clock: never early, two stats, markers."""

from __future__ import annotations

import pytest

from jetwatch.domain.settle import FileStat, Settler, file_marker, folder_marker

SETTLE_S = 5.0


def stat(size: int = 10, mtime_ns: int = 1, inode: int = 7, relpath: str = "a.mov") -> FileStat:
    return FileStat(relpath, size, mtime_ns, inode)


def test_signature_is_size_mtime_inode() -> None:
    """The signature is what the ledger keys a version on."""
    assert stat(1, 2, 3).signature == (1, 2, 3)


def test_growing_file_is_never_ready_while_it_grows() -> None:
    """A file observed with a new size every second never becomes ready."""
    settler = Settler(SETTLE_S)
    for second in range(60):
        settler.observe(stat(size=second * 1000, mtime_ns=second), float(second))
        assert settler.ready(float(second)) == []
    assert "a.mov" in settler


def test_one_observation_is_never_enough() -> None:
    """However long ago the first stat was, readiness needs a second, confirming one."""
    settler = Settler(SETTLE_S)
    settler.observe(stat(), 0.0)
    assert settler.ready(1e9) == []
    assert "a.mov" in settler
    assert len(settler) == 1


def test_ready_exactly_at_boundary_not_before() -> None:
    """Unchanged at t0 + settle_s is ready; a moment earlier is not."""
    settler = Settler(SETTLE_S)
    settler.observe(stat(), 100.0)
    settler.observe(stat(), 104.999)
    assert settler.ready(104.999) == []
    settler.observe(stat(), 105.0)
    assert settler.ready(105.0) == [stat()]
    assert "a.mov" not in settler
    assert settler.ready(106.0) == []  # returned once, then forgotten


@pytest.mark.parametrize(
    "changed",
    [stat(size=11), stat(mtime_ns=2), stat(inode=8)],
    ids=["size", "mtime", "inode-replaced-by-rename"],
)
def test_signature_change_resets_the_wait(changed: FileStat) -> None:
    """Any change of size, mtime or inode starts the settle time over."""
    settler = Settler(SETTLE_S)
    settler.observe(stat(), 0.0)
    settler.observe(changed, 4.0)
    settler.observe(changed, 8.0)  # only 4 s since the change
    assert settler.ready(8.0) == []
    settler.observe(changed, 9.0)
    assert settler.ready(9.0) == [changed]


def test_zero_byte_file_follows_the_same_rule() -> None:
    """An empty file gets no early pass."""
    settler = Settler(SETTLE_S)
    empty = stat(size=0)
    settler.observe(empty, 0.0)
    settler.observe(empty, 1.0)
    assert settler.ready(1.0) == []
    settler.observe(empty, 5.0)
    assert settler.ready(5.0) == [empty]


def test_zero_settle_still_needs_two_stats() -> None:
    """settle_s = 0 means "unchanged across two stats", not "at first sight"."""
    settler = Settler(0.0)
    settler.observe(stat(), 0.0)
    assert settler.ready(0.0) == []
    settler.observe(stat(), 0.0)
    assert settler.ready(0.0) == [stat()]


def test_marker_makes_ready_at_once() -> None:
    """An observation with the producer's ready marker is ready immediately."""
    settler = Settler(SETTLE_S)
    settler.observe(stat(), 0.0)
    settler.observe(stat(size=99), 0.5, marker=True)
    assert settler.ready(0.5) == [stat(size=99)]
    assert len(settler) == 0


def test_require_marker_ignores_stability() -> None:
    """With require_marker, a long-stable file waits for its marker."""
    settler = Settler(SETTLE_S, require_marker=True)
    settler.observe(stat(), 0.0)
    settler.observe(stat(), 100.0)
    assert settler.ready(100.0) == []
    settler.observe(stat(), 101.0, marker=True)
    assert settler.ready(101.0) == [stat()]


def test_growing_mode_is_ready_at_first_sight() -> None:
    """growing=True hands the file over the first time it is seen."""
    settler = Settler(SETTLE_S, growing=True)
    settler.observe(stat(), 0.0)
    assert settler.ready(0.0) == [stat()]


def test_vanished_drops_pending_and_ready_files() -> None:
    """A vanished file is forgotten, whether pending or already ready."""
    settler = Settler(SETTLE_S)
    settler.observe(stat(relpath="p"), 0.0)
    settler.observe(stat(relpath="r"), 0.0)
    settler.observe(stat(relpath="r"), 5.0)
    assert len(settler) == 2
    assert settler.vanished("p")
    assert settler.vanished("r")
    assert not settler.vanished("never-seen")
    assert settler.ready(10.0) == []
    assert len(settler) == 0


def test_change_after_ready_before_taken_starts_over() -> None:
    """A file that changes between being found ready and being taken waits again."""
    settler = Settler(SETTLE_S)
    settler.observe(stat(), 0.0)
    settler.observe(stat(), 5.0)
    settler.observe(stat(size=20), 6.0)
    assert settler.ready(6.0) == []
    assert "a.mov" in settler
    assert len(settler) == 1


def test_due_next_due_and_oldest_since() -> None:
    """Pending files are due for a re-stat settle_s after their signature was first seen."""
    settler = Settler(SETTLE_S)
    assert settler.next_due(0.0) is None
    assert settler.oldest_since() is None
    settler.observe(stat(relpath="a"), 1.0)
    settler.observe(stat(relpath="b"), 2.0)
    settler.observe(stat(relpath="a", size=99), 3.0)  # a changed: now due after b
    assert settler.oldest_since() == 2.0
    assert settler.next_due(3.0) == 7.0
    assert settler.next_due(50.0) == 50.0  # never in the past
    assert settler.due(7.5) == ["b"]
    assert settler.due(8.0) == ["b", "a"]
    settler.observe(stat(relpath="b"), 7.0)
    assert settler.next_due(7.0) == 7.0  # a ready file can be taken now


def test_many_pending_files_are_cheap() -> None:
    """100,000 pending files fit and settle together."""
    settler = Settler(SETTLE_S)
    stats = [stat(relpath=f"f{i}") for i in range(100_000)]
    for item in stats:
        settler.observe(item, 0.0)
    assert len(settler) == 100_000
    assert settler.due(4.0) == []
    for item in stats:
        settler.observe(item, 5.0)
    assert len(settler.ready(5.0)) == 100_000


def test_negative_settle_is_refused() -> None:
    """A negative settle time is a programming error."""
    with pytest.raises(ValueError, match="settle_s"):
        Settler(-1.0)


def test_marker_paths() -> None:
    """File markers append the suffix; folder markers sit inside the folder."""
    assert file_marker("a/clip.mov", ".ready") == "a/clip.mov.ready"
    assert folder_marker("drop", ".ready") == "drop/.ready"
    assert folder_marker("", ".ready") == ".ready"
