"""Tests of watch-mode choice: mountinfo parsing, the inotify watch budget, config overrides."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from jetwatch.intake.mounts import (
    WatchMode,
    choose_mode,
    count_dirs,
    inotify_max_user_watches,
    mount_fs_type,
    network_fs_type,
)

MOUNTINFO = """\
22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
25 22 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
40 22 0:40 / /mnt/nas rw,relatime shared:20 - nfs4 nas:/export rw,vers=4.2
41 40 259:3 / /mnt/nas/local-cache rw,relatime shared:21 - ext4 /dev/nvme0n1p3 rw
42 22 0:41 / /mnt/smb rw,relatime shared:22 - cifs //win/share rw,vers=3.1.1
43 22 0:42 / /home/u/remote rw,nosuid,nodev shared:23 - fuse.sshfs u@host:/data rw
44 22 0:43 / /mnt/with\\040space rw shared:24 - 9p hostshare rw
45 22 0:44 / /mnt/nasty rw shared:25 - ext4 /dev/sdb1 rw
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/mnt/nas/incoming/day1", "nfs4"),
        ("/mnt/nas", "nfs4"),
        ("/mnt/nas/local-cache/x", None),  # nested local mount: longest prefix wins
        ("/mnt/nasty/x", None),  # "/mnt/nas" is not a path prefix of "/mnt/nasty"
        ("/mnt/smb/drop", "cifs"),
        ("/home/u/remote/in", "fuse.sshfs"),
        ("/mnt/with space/in", "9p"),  # octal escapes in mount points
        ("/srv/hotfolder", None),  # local ext4 root
    ],
)
def test_network_fs_type_from_mountinfo(path: str, expected: str | None) -> None:
    """Network and FUSE mounts are recognised by the mount holding the path."""
    assert network_fs_type(Path(path), MOUNTINFO) == expected


def test_mount_fs_type_reports_local_types_too() -> None:
    """The raw lookup names the local filesystem; network_fs_type filters it."""
    assert mount_fs_type(Path("/mnt/nas/local-cache/x"), MOUNTINFO) == "ext4"
    assert mount_fs_type(Path("/x"), "garbage line\n\n") is None


def test_later_mount_on_same_point_wins() -> None:
    """A mount stacked on the same mount point hides the one below."""
    text = MOUNTINFO + "46 40 0:45 / /mnt/nas rw shared:26 - ext4 /dev/sdc1 rw\n"
    assert network_fs_type(Path("/mnt/nas/in"), text) is None


def test_real_mountinfo_is_readable(tmp_path: Path) -> None:
    """On this machine the real /proc is parsed: tmp_path lies on some mount."""
    real = Path("/proc/self/mountinfo").read_text(encoding="utf-8")
    assert mount_fs_type(tmp_path, real)
    assert network_fs_type(tmp_path) == network_fs_type(tmp_path, real)
    watches = inotify_max_user_watches()
    assert watches is None or watches > 0


def test_count_dirs_counts_hidden_and_stops_past_limit(tmp_path: Path) -> None:
    """Every directory needs a watch, hidden ones too; counting stops past the limit."""
    for name in ("a/b/c", "a/.git/objects", "d"):
        (tmp_path / name).mkdir(parents=True)
    assert count_dirs(tmp_path, limit=100) == 7  # root, a, b, c, .git, objects, d
    assert count_dirs(tmp_path, limit=2) == 3
    assert count_dirs(tmp_path / "missing", limit=100) == 0


def test_count_dirs_lists_only_directories_with_subdirectories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leaf directories (link count 2 on this filesystem) are counted without listing their
    files; a filesystem whose directories all say 1 gets every directory listed."""
    for leaf in ("a/x", "a/y", "b"):
        (tmp_path / leaf).mkdir(parents=True)
        for i in range(3):
            (tmp_path / leaf / f"f{i}.mov").write_bytes(b"")
    listed: list[str] = []
    real_scandir = os.scandir

    def scandir(path: str) -> Any:
        listed.append(os.path.relpath(path, tmp_path))
        return real_scandir(path)

    monkeypatch.setattr("jetwatch.intake.mounts.os.scandir", scandir)
    assert count_dirs(tmp_path, limit=100) == 5  # root, a, a/x, a/y, b
    if os.stat(tmp_path / "b").st_nlink == 2:  # ext4, xfs, tmpfs
        assert sorted(listed) == [".", "a"]
    listed.clear()
    real_lstat = os.lstat

    def lstat_says_one(path: str) -> Any:
        st = real_lstat(path)
        return os.stat_result((st.st_mode, st.st_ino, st.st_dev, 1, *tuple(st)[4:]))

    monkeypatch.setattr("jetwatch.intake.mounts.os.lstat", lstat_says_one)
    assert count_dirs(tmp_path, limit=100) == 5
    assert sorted(listed) == [".", "a", "a/x", "a/y", "b"]


def test_choose_mode_tiny_watch_budget_forces_scan(tmp_path: Path) -> None:
    """A tree with more directories than inotify watches left is scanned instead."""
    for i in range(5):
        (tmp_path / f"d{i}").mkdir()
    mode, reason = choose_mode(tmp_path, "auto", mountinfo_text="", max_watches=3)
    assert mode is WatchMode.SCAN
    assert "exceed fs.inotify.max_user_watches=3" in reason
    mode, reason = choose_mode(tmp_path, "auto", mountinfo_text="", max_watches=100)
    assert (mode, reason) == (WatchMode.EVENTS, "local filesystem")


def test_choose_mode_network_filesystem_scans() -> None:
    """A folder on NFS is scanned: inotify cannot see writes made by other hosts."""
    mode, reason = choose_mode(Path("/mnt/nas/in"), "auto", mountinfo_text=MOUNTINFO)
    assert mode is WatchMode.SCAN
    assert reason == "network filesystem nfs4: inotify cannot see remote writes"


def test_choose_mode_config_overrides(tmp_path: Path) -> None:
    """poll = scan / events in the config win over detection, with a warning for NFS."""
    assert choose_mode(tmp_path, "scan") == (WatchMode.SCAN, "poll = scan in config")
    mode, reason = choose_mode(tmp_path, "events", mountinfo_text="", max_watches=0)
    assert (mode, reason) == (WatchMode.EVENTS, "poll = events in config")
    mode, reason = choose_mode(Path("/mnt/smb/x"), "events", mountinfo_text=MOUNTINFO)
    assert mode is WatchMode.EVENTS
    assert "cifs" in reason
    with pytest.raises(ValueError, match="poll"):
        choose_mode(tmp_path, "sometimes")
