"""The pure decision about a new version of a path that was sent before."""

from __future__ import annotations

from jetwatch.domain.states import FileKey
from jetwatch.domain.versions import EarlierVersion, VersionNotice, version_notice

OLD = FileKey("a.mov", 100, 1_000, 7)


def earlier(new: FileKey, after_s: float) -> EarlierVersion:
    return EarlierVersion(new, 1000.0 + after_s, OLD, 1000.0)


def test_same_size_and_mtime_whatever_the_inode_or_age() -> None:
    """Jet compares size and mtime only: any such version is skipped there."""
    for inode in (7, 8):
        found = version_notice(earlier(FileKey("a.mov", 100, 1_000, inode), 86400), 5.0)
        assert found is VersionNotice.SAME_SIZE_MTIME


def test_grown_soon_after_is_a_paused_writer() -> None:
    """Same inode, bigger and newer within 20 settle periods (at least a minute)."""
    grown = FileKey("a.mov", 150, 2_000, 7)
    assert version_notice(earlier(grown, 30), 1.0) is VersionNotice.WRITTEN_AGAIN
    assert version_notice(earlier(grown, 90), 5.0) is VersionNotice.WRITTEN_AGAIN
    assert version_notice(earlier(grown, 101), 5.0) is None  # long after: an append
    assert version_notice(earlier(FileKey("a.mov", 150, 2_000, 8), 1), 1.0) is None
    assert version_notice(earlier(FileKey("a.mov", 90, 2_000, 7), 1), 1.0) is None
