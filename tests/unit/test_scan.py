"""Tests of the tree scanner and re-stat helper on real files in tmp_path."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from jetwatch.domain.settle import FileStat
from jetwatch.intake.dirindex import DirIndex
from jetwatch.intake.filters import PathFilter
from jetwatch.intake.scan import outermost, scan_changed, scan_tree, stat_paths
from tests.fixtures.host import call_as_user, give_to


def write(root: Path, relpath: str, data: bytes = b"x") -> None:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def scan_all(root: Path, **kwargs: object) -> tuple[list[list[FileStat]], list[tuple[str, str]]]:
    path_filter = PathFilter()
    bad: list[tuple[str, str]] = []
    chunks = list(
        scan_tree(
            root,
            accept=path_filter,
            dir_excluded=path_filter.dir_excluded,
            on_bad_name=lambda rel, why: bad.append((rel, why)),
            **kwargs,  # type: ignore[arg-type]
        )
    )
    return chunks, bad


def test_nested_tree_hidden_symlink_and_bad_name(tmp_path: Path) -> None:
    """Regular accepted files come back with "/" paths; hidden, symlinked and bad are not."""
    write(tmp_path, "top.mov", b"12345")
    write(tmp_path, "a/b/c/deep.mxf")
    write(tmp_path, "a/.cache/hidden.mov")
    write(tmp_path, ".git/config")
    write(tmp_path, "a/.clip.mov.Xa81k2")
    write(tmp_path, "a/part.tmp")
    os.symlink(tmp_path / "top.mov", tmp_path / "a/link.mov")
    os.symlink(tmp_path / "a", tmp_path / "dirlink")
    os.close(os.open(os.fsencode(tmp_path / "a") + b"/bad\xff.mov", os.O_CREAT | os.O_WRONLY))
    write(tmp_path, "a/new\nline.mov")
    (tmp_path / "bad\x01dir").mkdir()
    write(tmp_path, "bad\x01dir/inside.mov")

    chunks, bad = scan_all(tmp_path)
    files = {f.relpath: f for chunk in chunks for f in chunk}
    assert set(files) == {"top.mov", "a/b/c/deep.mxf"}
    top = files["top.mov"]
    st = os.stat(tmp_path / "top.mov")
    assert (top.size, top.mtime_ns, top.inode) == (5, st.st_mtime_ns, st.st_ino)
    assert sorted(bad) == [
        ("a/bad\udcff.mov", "not valid UTF-8"),
        ("a/new\nline.mov", "control character in name"),
        ("bad\x01dir", "control character in name"),
    ]


def test_chunks_are_bounded(tmp_path: Path) -> None:
    """Files come in chunks of at most chunk_files, and every file exactly once."""
    for i in range(25):
        write(tmp_path, f"d{i % 3}/f{i}.mov")
    chunks, _ = scan_all(tmp_path, chunk_files=10)
    assert [len(c) for c in chunks] == [10, 10, 5]
    assert len({f.relpath for c in chunks for f in c}) == 25


def test_subdir_scan_keeps_paths_relative_to_root(tmp_path: Path) -> None:
    """Scanning a subdirectory yields only its files, named from the folder root."""
    write(tmp_path, "x/y/z.mov")
    write(tmp_path, "other.mov")
    chunks, _ = scan_all(tmp_path, subdir="x/")
    assert [f.relpath for c in chunks for f in c] == ["x/y/z.mov"]


def test_file_deleted_mid_scan_is_skipped(tmp_path: Path) -> None:
    """A file that vanishes between listing and stat is skipped; the scan goes on."""
    names = [f"f{i}.mov" for i in range(10)]
    for name in names:
        write(tmp_path, name)
    deleted: list[str] = []

    def accept_and_delete_next(relpath: str) -> bool:
        # The first file accepted deletes every other file not yet seen.
        if not deleted:
            for name in names:
                if name != relpath:
                    (tmp_path / name).unlink()
                    deleted.append(name)
        return True

    chunks = list(
        scan_tree(
            tmp_path,
            accept=accept_and_delete_next,
            dir_excluded=lambda _rel: False,
            on_bad_name=lambda _rel, _why: None,
        )
    )
    seen = [f.relpath for c in chunks for f in c]
    assert len(seen) == 1
    assert len(deleted) == 9


def unreadable_subdir_case(root: str) -> dict[str, list[str]]:
    """Scan ``root`` with its "locked" subdirectory at mode 0 (run as a user it stops)."""
    base = Path(root)
    (base / "locked").chmod(0)
    errors: list[str] = []
    try:
        chunks, _ = scan_all(base, on_dir_error=lambda rel, _exc: errors.append(rel))
    finally:
        (base / "locked").chmod(0o755)
    return {"seen": [f.relpath for c in chunks for f in c], "errors": errors}


def test_unreadable_subdir_is_reported_and_skipped(open_tmp: Path) -> None:
    """A subdirectory without permission is reported; the rest of the tree is scanned
    (as an unprivileged user: root reads unreadable directories)."""
    write(open_tmp, "ok/a.mov")
    write(open_tmp, "locked/b.mov")
    if os.geteuid() == 0:
        give_to(open_tmp)
        found = call_as_user(f"{__name__}:unreadable_subdir_case", str(open_tmp))
    else:
        found = unreadable_subdir_case(str(open_tmp))
    assert found == {"seen": ["ok/a.mov"], "errors": ["locked"]}


def test_unreadable_subdir_even_as_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EACCES on a subdirectory (which root cannot cause for real) is reported and skipped."""
    write(tmp_path, "ok/a.mov")
    write(tmp_path, "locked/b.mov")
    real_scandir = os.scandir

    def scandir(path: str) -> object:
        if path.endswith("/locked"):
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr("jetwatch.intake.scan.os.scandir", scandir)
    errors: list[str] = []
    chunks, _ = scan_all(tmp_path, on_dir_error=lambda rel, _exc: errors.append(rel))
    assert [f.relpath for c in chunks for f in c] == ["ok/a.mov"]
    assert errors == ["locked"]


def test_subdir_with_bad_name_is_reported_not_scanned(tmp_path: Path) -> None:
    """A subdirectory scan never yields paths through an unsendable directory name."""
    write(tmp_path, "bad\x02dir/a.mov")
    chunks, bad = scan_all(tmp_path, subdir="bad\x02dir")
    assert chunks == []
    assert bad == [("bad\x02dir", "control character in name")]


def test_missing_root_raises(tmp_path: Path) -> None:
    """Only a missing starting directory raises, and only FileNotFoundError."""
    with pytest.raises(FileNotFoundError):
        scan_all(tmp_path / "gone")


def test_cancelled_scan_stops(tmp_path: Path) -> None:
    """A cancelled callback stops the walk at the next directory."""
    for i in range(5):
        write(tmp_path, f"d{i}/f.mov")
    chunks, _ = scan_all(tmp_path, cancelled=lambda: True)
    assert chunks == []


def test_stat_paths_splits_found_and_gone(tmp_path: Path) -> None:
    """stat_paths returns stats of regular files and names the ones that are gone."""
    write(tmp_path, "here.mov", b"abc")
    (tmp_path / "now-a-dir").mkdir()
    os.symlink(tmp_path / "here.mov", tmp_path / "link.mov")
    found, gone = stat_paths(tmp_path, ["here.mov", "missing.mov", "now-a-dir", "link.mov"])
    assert [(f.relpath, f.size) for f in found] == [("here.mov", 3)]
    assert sorted(gone) == ["link.mov", "missing.mov", "now-a-dir"]


def test_outermost_drops_nested_dirs() -> None:
    """Scanning a parent covers its children."""
    assert outermost({"a", "a/b", "ab", "c/d", "c/d/e"}) == ["a", "ab", "c/d"]


def walk_index(root: Path) -> tuple[DirIndex, set[str]]:
    """A full walk recording its directories; the files it found."""
    index = DirIndex()
    chunks, _ = scan_all(root, index=index)
    return index, {f.relpath for c in chunks for f in c}


def changed_pass(root: Path, index: DirIndex) -> set[str]:
    """One pass over the directories whose times changed; the files it found."""
    path_filter = PathFilter()
    chunks = scan_changed(
        root,
        index,
        accept=path_filter.scanned_file,
        dir_excluded=path_filter.dir_excluded,
        on_bad_name=lambda _rel, _why: None,
    )
    return {f.relpath for c in chunks for f in c}


def tick(path: Path) -> None:
    """Wait until the filesystem clock moved past ``path``'s ctime (timestamps are coarse)."""
    ctime_ns = os.stat(path).st_ctime_ns
    while time.time_ns() < ctime_ns + 20_000_000:
        time.sleep(0.005)


def test_changed_pass_lists_changed_dirs_and_walks_new_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only directories whose times changed are listed; new ones whole; gone ones forgotten."""
    monkeypatch.setattr("jetwatch.intake.dirindex.RACY_NS", 0)
    write(tmp_path, "a/b/c/old.mov")
    write(tmp_path, "quiet/still.mov")
    write(tmp_path, "doomed/sub/x.mov")
    index, files = walk_index(tmp_path)
    assert files == {"a/b/c/old.mov", "quiet/still.mov", "doomed/sub/x.mov"}
    assert set(index.dirs) == {"", "a", "a/b", "a/b/c", "quiet", "doomed", "doomed/sub"}
    assert changed_pass(tmp_path, index) == set()
    tick(tmp_path / "doomed" / "sub")
    write(tmp_path, "a/b/c/new.mov")
    write(tmp_path, "quiet/still.mov", b"rewritten in place")
    staging = tmp_path.parent / f"{tmp_path.name}-staging"
    write(staging, "deep/er/in.mov")
    staging.rename(tmp_path / "a" / "moved-in")
    shutil.rmtree(tmp_path / "doomed")
    assert changed_pass(tmp_path, index) == {
        "a/b/c/old.mov",
        "a/b/c/new.mov",
        "a/moved-in/deep/er/in.mov",
    }
    assert set(index.dirs) == {
        *("", "a", "a/b", "a/b/c", "quiet"),
        *("a/moved-in", "a/moved-in/deep", "a/moved-in/deep/er"),
    }
    assert changed_pass(tmp_path, index) == set()
    assert "quiet/still.mov" in walk_index(tmp_path)[1]  # only a full walk sees it


def test_dir_changed_close_to_its_listing_is_listed_again(tmp_path: Path) -> None:
    """A directory whose times are as recent as the look at it is listed again next pass."""
    write(tmp_path, "d/a.mov")
    index, _ = walk_index(tmp_path)  # just written: within RACY_NS of the listing
    assert index.dirs["d"].recheck
    assert changed_pass(tmp_path, index) == {"d/a.mov"}


def test_audit_finds_listing_changes_under_unchanged_times(tmp_path: Path) -> None:
    """A directory with other entries but the same times means directory times lie."""
    write(tmp_path, "d/a.mov")
    before, _ = walk_index(tmp_path)
    after, _ = walk_index(tmp_path)
    before.dirs["d"].recheck = False
    assert before.audit(after) is None
    before.dirs["d"].entries = 5
    assert before.audit(after) == "d"


def test_index_gives_up_past_max_dirs(tmp_path: Path) -> None:
    """More directories than the index may hold set ``overflow``."""
    for i in range(5):
        write(tmp_path, f"d{i}/a.mov")
    index = DirIndex(max_dirs=3)
    scan_all(tmp_path, index=index)
    assert index.overflow
    assert len(index.dirs) == 3


def test_changed_pass_raises_when_the_root_is_gone(tmp_path: Path) -> None:
    """A missing root is the caller's outage, raised at the first chunk."""
    write(tmp_path / "root", "a.mov")
    index, _ = walk_index(tmp_path / "root")
    shutil.rmtree(tmp_path / "root")
    with pytest.raises(FileNotFoundError):
        changed_pass(tmp_path / "root", index)
