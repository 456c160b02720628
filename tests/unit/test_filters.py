"""Tests of the name rules: default excludes, glob semantics, markers and unsendable names."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import pytest

from jetwatch.intake.filters import DEFAULT_EXCLUDES, PathFilter, name_problem


@pytest.mark.parametrize(
    ("relpath", "expected"),
    [
        ("clip.mov", True),
        ("a/b/clip.mov", True),
        (".hidden", False),
        ("a/.hidden.mov", False),
        (".clip.mov.Xa81k2", False),  # rsync temporary file
        ("a/.rsync-partial/clip.mov", False),
        ("a/.git/objects/ab/cdef", False),  # nested hidden directory
        ("upload.tmp", False),
        ("movie.part", False),
        ("movie.partial", False),
        ("setup.crdownload", False),
        ("~$report.docx", False),
        ("#work_file#", False),
        ("x/#chkpt_file#", False),
        ("photos/.DS_Store", False),
        ("photos/Thumbs.db", False),
        ("shot.tmp/frame.dpx", False),  # an excluded name excludes a directory too
        ("report.docx", True),
        ("tmp/report.docx", True),
    ],
)
def test_default_filter(relpath: str, expected: bool) -> None:
    """The default filter accepts ordinary files and refuses other tools' temporary names."""
    assert PathFilter()(relpath) is expected


@pytest.mark.parametrize(
    ("include", "exclude", "relpath", "expected"),
    [
        (["*.mov"], [], "a/b/clip.mov", True),  # no "/": the basename
        (["*.mov"], [], "a/b/clip.mxf", False),
        (["incoming/*.mxf"], [], "incoming/x/y.mxf", True),  # with "/": "*" crosses "/"
        (["incoming/*.mxf"], [], "other/y.mxf", False),
        (["*.MOV"], [], "clip.mov", False),  # case-sensitive
        (["*"], ["*.xml"], "a/meta.xml", False),
        (["*"], ["proxies"], "proxies/a.mov", False),  # a name pattern prunes a directory
        (["*"], ["proxies"], "a/proxies/b.mov", False),
        (["*"], ["a/proxies"], "a/proxies/b.mov", False),  # a path pattern too
        (["*"], ["a/proxies"], "b/proxies/b.mov", True),
        (["*"], ["/a/*.mov/"], "a/x.mov", False),  # surrounding "/" ignored
        (["*.mov", "*.mxf"], [], "clip.mxf", True),
        ([], [], "clip.mov", False),
    ],
)
def test_include_exclude_semantics(
    include: list[str], exclude: list[str], relpath: str, expected: bool
) -> None:
    """A pattern without "/" matches the basename; one with "/" matches the whole path."""
    assert PathFilter(include, exclude)(relpath) is expected


def test_user_excludes_add_to_defaults() -> None:
    """User excludes never remove the defaults."""
    path_filter = PathFilter(exclude=["*.xml"])
    assert not path_filter("x.part")
    assert not path_filter("x.xml")
    assert set(DEFAULT_EXCLUDES) >= {".*", "*.tmp", "Thumbs.db"}


@pytest.mark.parametrize(
    ("relpath", "accepted"),
    [
        ("clip.mov", True),
        ("clip.mov.ready", False),
        ("drop/clip.mov.ready", False),
        ("drop/.ready", False),  # folder marker
        ("ready", True),
    ],
)
def test_ready_markers_are_never_candidates(relpath: str, accepted: bool) -> None:
    """A ready marker is a signal, not a delivery."""
    path_filter = PathFilter(ready_marker=".ready")
    assert path_filter(relpath) is accepted


def test_markers_accepted_when_not_configured() -> None:
    """Without ready_marker, a ".ready" suffix is an ordinary name."""
    path_filter = PathFilter()
    assert path_filter("clip.mov.ready")


@pytest.mark.parametrize(
    ("reldir", "expected"),
    [
        (".git", True),
        ("a/.cache", True),
        ("a/b", False),
        ("x.tmp", True),
        ("a/proxies", True),
        ("proxies", True),
    ],
)
def test_dir_excluded_prunes_by_name_and_path(reldir: str, expected: bool) -> None:
    """dir_excluded checks the directory itself, so the scanner can prune it."""
    assert PathFilter(exclude=["proxies"]).dir_excluded(reldir) is expected


def test_one_filter_many_paths_same_directories() -> None:
    """Directory verdicts remembered across calls never leak between directories."""
    path_filter = PathFilter(exclude=["raw"])
    for i in range(3):
        assert path_filter(f"a/b/clip{i}.mov")
        assert not path_filter(f"a/.b/clip{i}.mov")
        assert not path_filter(f"a/raw/c/clip{i}.mov")
        assert path_filter(f"a/rawx/c/clip{i}.mov")


def test_excluded_checks_every_ancestor() -> None:
    """excluded() rejects a path below an excluded directory even if its name is fine."""
    path_filter = PathFilter()
    assert path_filter.excluded("a/.snapshot/b/c.mov")
    assert not path_filter.excluded("a/snapshot/b/c.mov")


@pytest.mark.parametrize(
    ("relpath", "problem"),
    [
        ("clip.mov", None),
        ("dir/été 2024 — 日本.mov", None),
        ("bad\udcff.mov", "not valid UTF-8"),
        ("a\nb.mov", "control character in name"),
        ("tab\there", "control character in name"),
        ("del\x7f", "control character in name"),
        ("c1\x85", "control character in name"),
        ("nul\x00", "control character in name"),
    ],
)
def test_name_problem_table(relpath: str, problem: str | None) -> None:
    """Names Jet cannot carry are named, ordinary Unicode is fine."""
    assert name_problem(relpath) == problem


def test_name_problem_on_real_invalid_utf8_name(tmp_path: Path) -> None:
    """A file whose name bytes are not UTF-8 comes back from scandir as "not valid UTF-8"."""
    fd = os.open(os.fsencode(tmp_path) + b"/bad\xff\xfe.mov", os.O_CREAT | os.O_WRONLY, 0o644)
    os.close(fd)
    (tmp_path / "line\nbreak.mov").write_bytes(b"x")
    (tmp_path / "fine.mov").write_bytes(b"x")
    problems = {entry.name: name_problem(entry.name) for entry in os.scandir(tmp_path)}
    assert problems == {
        "bad\udcff\udcfe.mov": "not valid UTF-8",
        "line\nbreak.mov": "control character in name",
        "fine.mov": None,
    }


NAME_PATTERNS = (
    "*",
    ".*",
    "*.tmp",
    "~$*",
    "Thumbs.db",
    "a*b",
    "*[0-9]",
    "x?z",
    "**",
    "[!.]*",
    "*.",
)
NAMES = (
    ".",
    "..x",
    "a.tmp",
    ".tmp",
    "tmp",
    "~$doc",
    "~",
    "Thumbs.db",
    "thumbs.db",
    "ab",
    "axxb",
    "b",
    "clip7",
    "xyz",
    "xz",
    "*",
    "*.tmp",
    "[0-9]",
    "a.",
    "é.tmp",
    "line\nbreak.tmp",
)


@pytest.mark.parametrize("pattern", NAME_PATTERNS)
def test_name_patterns_decide_as_fnmatchcase_does(pattern: str) -> None:
    """Prefix, suffix and plain-name patterns are matched by string methods, the rest by a
    regex: every one decides as fnmatch.fnmatchcase, for includes and excludes alike."""
    include = PathFilter(include=(pattern,), exclude=())
    exclude = PathFilter(include=("*",), exclude=(pattern,))
    for name in NAMES:
        if name.startswith(".") or any(fnmatch.fnmatchcase(name, p) for p in DEFAULT_EXCLUDES):
            continue  # the default excludes decide those
        expected = fnmatch.fnmatchcase(name, pattern)
        assert include(name) is expected, (pattern, name)
        assert exclude(name) is not expected, (pattern, name)
        assert exclude.dir_excluded(f"d/{name}") is expected, (pattern, name)
