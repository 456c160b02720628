"""Post-actions on real files: no overwrite, tidy directories, changed files and dropped shares."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import structlog

from jetwatch.config.settings import FolderSettings
from jetwatch.domain.states import FileKey, FileRow, FileState, HoldReason
from jetwatch.domain.wake import Stage, Wakeups
from jetwatch.ledger.sqlite import SqliteLedger
from jetwatch.pipeline.actions import (
    RETRY_S,
    PostActions,
    apply_action,
    free_name,
    move_file,
    prune_empty_dirs,
)
from tests.fixtures.clock import FakeClock
from tests.fixtures.ledger import delivered


def row_for(folder: Path, relpath: str, state: FileState = FileState.TRANSFERRED) -> FileRow:
    st = (folder / relpath).stat()
    return FileRow(
        7, "f", relpath, st.st_size, st.st_mtime_ns, st.st_ino, state, 1, 1, 0.0, 0.0, None,
        False,
    )  # fmt: skip


def make(path: Path, data: bytes = b"data") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_free_name_adds_a_number_before_the_extensions(tmp_path: Path) -> None:
    """A taken name gets ``.1``, ``.2`` ... before its extensions; a free one is kept."""
    assert free_name(tmp_path / "a.tar.gz") == tmp_path / "a.tar.gz"
    make(tmp_path / "a.tar.gz")
    make(tmp_path / "a.1.tar.gz")
    assert free_name(tmp_path / "a.tar.gz") == tmp_path / "a.2.tar.gz"
    make(tmp_path / "noext")
    assert free_name(tmp_path / "noext") == tmp_path / "noext.1"


def test_move_never_overwrites(tmp_path: Path) -> None:
    """Moving onto a taken name keeps both files."""
    source = make(tmp_path / "in" / "clip.mov", b"new")
    make(tmp_path / "done" / "clip.mov", b"old")
    final = move_file(source, tmp_path / "done" / "clip.mov")
    assert final == tmp_path / "done" / "clip.1.mov"
    assert final.read_bytes() == b"new"
    assert (tmp_path / "done" / "clip.mov").read_bytes() == b"old"
    assert not source.exists()


def test_prune_stops_below_the_root(tmp_path: Path) -> None:
    """Empty directories are removed upwards, the watched folder never, non-empty ones stay."""
    root = tmp_path / "watched"
    (root / "a" / "b" / "c").mkdir(parents=True)
    make(root / "keep" / "x")
    prune_empty_dirs(root / "a" / "b" / "c", root)
    assert sorted(p.name for p in root.iterdir()) == ["keep"]
    prune_empty_dirs(root, root)
    assert root.is_dir()


def test_delete_of_the_last_file_keeps_the_root(tmp_path: Path) -> None:
    """Deleting the only file of the folder leaves the (now empty) folder in place."""
    folder = FolderSettings(path=tmp_path / "w", job="j", post_action="delete")
    make(folder.path / "only.txt")
    assert apply_action(folder, row_for(folder.path, "only.txt")).text == "deleted"
    assert folder.path.is_dir()
    assert list(folder.path.iterdir()) == []


def test_changed_file_is_left_alone(tmp_path: Path) -> None:
    """A file rewritten after it was delivered is a new version: neither moved nor deleted."""
    for action in ("delete", "move"):
        folder = FolderSettings(
            path=tmp_path / action, job="j", post_action=action, done_dir=tmp_path / "done"
        )
        make(folder.path / "a.txt", b"v1")
        row = row_for(folder.path, "a.txt")
        make(folder.path / "a.txt", b"version 2")
        assert apply_action(folder, row).text.startswith("changed since delivery")
        assert (folder.path / "a.txt").read_bytes() == b"version 2"


def test_file_already_gone_counts_as_done(tmp_path: Path) -> None:
    """A delivered file someone else removed needs no action."""
    folder = FolderSettings(path=tmp_path / "w", job="j", post_action="delete")
    make(folder.path / "a.txt")
    row = row_for(folder.path, "a.txt")
    (folder.path / "a.txt").unlink()
    assert apply_action(folder, row).text == "already gone"


def test_missing_folder_is_an_error_to_retry_not_done(tmp_path: Path) -> None:
    """With the share away the file is not gone: the action fails now and is retried later."""
    folder = FolderSettings(path=tmp_path / "w", job="j", post_action="delete")
    make(folder.path / "a.txt")
    row = row_for(folder.path, "a.txt")
    folder.path.rename(tmp_path / "away")
    with pytest.raises(FileNotFoundError, match="watched folder unavailable"):
        apply_action(folder, row)


def test_failed_file_moves_to_failed_dir_only_when_configured(tmp_path: Path) -> None:
    """A given-up file goes to failed_dir (keeping its path), or stays without one."""
    kept = FolderSettings(path=tmp_path / "k", job="j", post_action="delete")
    make(kept.path / "sub" / "bad.bin")
    assert apply_action(kept, row_for(kept.path, "sub/bad.bin", FileState.FAILED)).text == "kept"
    moved = FolderSettings(path=tmp_path / "m", job="j", failed_dir=tmp_path / "failed")
    make(moved.path / "sub" / "bad.bin")
    result = apply_action(moved, row_for(moved.path, "sub/bad.bin", FileState.FAILED)).text
    assert result.startswith("moved to")
    assert (tmp_path / "failed" / "sub" / "bad.bin").exists()
    assert not (moved.path / "sub").exists()


async def test_post_actions_retry_while_the_share_is_away(
    sqlite_ledger: SqliteLedger, tmp_path: Path
) -> None:
    """The loop records the error (visible in status), acts once the folder is back, says so."""
    folder = FolderSettings(path=tmp_path / "w", job="j", name="f", post_action="delete")
    make(folder.path / "a.txt")
    st = (folder.path / "a.txt").stat()
    now = time.time()
    await delivered(
        sqlite_ledger, "f", [FileKey("a.txt", st.st_size, st.st_mtime_ns, st.st_ino)], now
    )
    clock, wakeups = FakeClock(now), Wakeups()
    actions = PostActions(sqlite_ledger, lambda: {"f": folder}, wakeups=wakeups, clock=clock)
    folder.path.rename(tmp_path / "away")
    await actions.run_once()
    assert not await wakeups.sleep(Stage.BATCH, 0)
    [error] = (await sqlite_ledger.snapshot(now)).action_errors
    assert error.relpath == "a.txt"
    assert "unavailable" in (error.error or "")
    # The loop sleeps until then, not a stage's idle time (a safety net only).
    assert actions.next_retry_at() == clock.monotonic() + RETRY_S
    (tmp_path / "away").rename(folder.path)
    clock.advance(3600)  # past the retry time
    await actions.run_once()
    assert (await sqlite_ledger.counts("f"))["f"][FileState.DONE] == 1
    assert not (folder.path / "a.txt").exists()
    assert await wakeups.sleep(Stage.BATCH, 0)  # the batcher is told: a newer version may go
    assert actions.next_retry_at() is None


async def test_a_page_logs_one_summary_and_only_unusual_files(
    sqlite_ledger: SqliteLedger, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A page gives one summary by outcome; per-file lines only for a changed file, or at debug."""
    folder = FolderSettings(path=tmp_path / "w", job="j", name="f", post_action="delete")
    now = time.time()
    await delivered(
        sqlite_ledger, "f", written(folder.path, "a.txt", "b.txt", "c.txt", "d.txt"), now
    )
    make(folder.path / "c.txt", b"rewritten since")
    (folder.path / "d.txt").unlink()
    actions = PostActions(
        sqlite_ledger, lambda: {"f": folder}, wakeups=Wakeups(), clock=FakeClock(now)
    )
    caplog.set_level(logging.INFO, logger="jetwatch.pipeline.actions")
    with structlog.testing.capture_logs() as logs:
        await actions.run_once()
    (summary,) = [e for e in logs if e["event"] == "post_actions_applied"]
    assert summary == summary | {"files": 4, "deleted": 2, "changed": 1, "already_gone": 1}
    assert [e["path"] for e in logs if e["event"] == "post_action"] == ["c.txt"]

    await delivered(sqlite_ledger, "f", written(folder.path, "e.txt", "f.txt"), now)
    caplog.set_level(logging.DEBUG, logger="jetwatch.pipeline.actions")
    with structlog.testing.capture_logs() as logs:
        await actions.run_once()
    (summary,) = [e for e in logs if e["event"] == "post_actions_applied"]
    assert summary == summary | {"files": 2, "deleted": 2}
    per_file = sorted(e["path"] for e in logs if e["event"] == "post_action")
    assert per_file == ["e.txt", "f.txt"]


def written(root: Path, *names: str) -> list[FileKey]:
    """Write the files and return their keys."""
    keys = []
    for name in names:
        st = make(root / name).stat()
        keys.append(FileKey(name, st.st_size, st.st_mtime_ns, st.st_ino))
    return keys


async def test_only_delivered_files_are_offered_to_post_actions(
    sqlite_ledger: SqliteLedger, tmp_path: Path
) -> None:
    """With post_action = delete, a file in any state short of a finished delivery
    (settled, batched, submitting, in flight, held, failed, gone) stays on disk."""
    folder = FolderSettings(path=tmp_path / "w", job="j", name="f", post_action="delete")
    names = ["stable", "batched", "submitting", "submitted", "held", "failed", "gone", "done"]
    keys = {}
    for name in names:
        st = make(folder.path / f"{name}.bin").stat()
        keys[name] = FileKey(f"{name}.bin", st.st_size, st.st_mtime_ns, st.st_ino)
    now = time.time()
    ledger = sqlite_ledger
    ids = {n: (await ledger.add_stable("f", [keys[n]], now))[0] for n in names if n != "done"}
    batches = {n: await ledger.create_batch("f", [ids[n]], now) for n in names[1:6]}
    for n in ("submitting", "submitted", "failed"):
        await ledger.mark_submitting(batches[n], "job-1", now)
    await ledger.mark_submitted(batches["submitted"], "dlv-1", now)
    await ledger.mark_held(batches["held"], HoldReason.PAUSED, now)
    await ledger.fail_batch(batches["failed"], "refused", now, [], [ids["failed"]])
    await ledger.mark_gone([ids["gone"]], now)
    await delivered(ledger, "f", [keys["done"]], now)
    actions = PostActions(ledger, lambda: {"f": folder}, wakeups=Wakeups(), clock=FakeClock(now))
    await actions.run_once()
    left = sorted(p.stem for p in folder.path.iterdir())
    assert left == sorted(n for n in names if n != "done")
    assert [r.relpath for r in await ledger.pending_actions()] == []
