"""Ledger upkeep prunes finished rows of files gone from disk, and nothing it cannot be sure of."""

from __future__ import annotations

import time
from pathlib import Path

from jetwatch.config.settings import FolderSettings
from jetwatch.domain.states import FileKey
from jetwatch.ledger.sqlite import SqliteLedger
from jetwatch.pipeline.upkeep import LedgerMaintenance, file_exists_checker
from tests.fixtures.ledger import delivered


def _folder(path: Path) -> FolderSettings:
    return FolderSettings(path=path, job="Manual Job", name="cams")


def _key(root: Path, name: str) -> FileKey:
    path = root / name
    path.write_bytes(b"x" * 10)
    st = path.stat()
    return FileKey(name, st.st_size, st.st_mtime_ns, st.st_ino)


def test_exists_is_true_when_unsure(tmp_path: Path) -> None:
    """A missing root (share down) or an unknown folder counts as 'exists': never prune then."""
    root = tmp_path / "in"
    root.mkdir()
    (root / "here.mov").write_bytes(b"1")
    exists = file_exists_checker({"cams": _folder(root)})
    assert exists("cams", "here.mov")
    assert not exists("cams", "gone.mov")
    assert exists("removed-folder", "gone.mov")
    root.rename(tmp_path / "unmounted")
    assert exists("cams", "gone.mov")


async def test_prune_removes_only_old_rows_of_deleted_files(
    sqlite_ledger: SqliteLedger, tmp_path: Path
) -> None:
    """Old DONE rows of deleted files go; kept files and recent rows stay."""
    root = tmp_path / "in"
    root.mkdir()
    keys = [_key(root, "kept.mov"), _key(root, "deleted.mov")]
    long_ago = time.time() - 40 * 86400
    ids = await delivered(sqlite_ledger, "cams", keys, long_ago)
    await sqlite_ledger.mark_done(ids, long_ago)
    (root / "deleted.mov").unlink()
    fresh = await delivered(sqlite_ledger, "cams", [FileKey("fresh.mov", 1, 1, 1)], time.time())
    await sqlite_ledger.mark_done(fresh, time.time())

    upkeep = LedgerMaintenance(
        sqlite_ledger, lambda: {"cams": _folder(root)}, retention_s=30 * 86400
    )
    assert await upkeep.run_once() == 1
    remaining = {k: v for k, v in (await sqlite_ledger.counts("cams"))["cams"].items() if v}
    assert remaining == {"DONE": 2}
    assert await sqlite_ledger.is_known("cams", keys[0])
    assert not await sqlite_ledger.is_known("cams", keys[1])
