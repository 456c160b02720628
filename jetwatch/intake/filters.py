"""Name rules: which paths are delivery candidates, and which names cannot be sent at all."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

# Other tools' work-in-progress names (complaint 10). ".*" covers hidden files and
# directories, including rsync's ".name.XXXXXX" temporary files.
DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".*",
    "*.tmp",
    "*.part",
    "*.partial",
    "*.crdownload",
    "~$*",
    "#work_file#",
    "#chkpt_file#",
    ".DS_Store",
    "Thumbs.db",
)

# Lone surrogates are what os.fsdecode (surrogateescape) makes of bytes that are not UTF-8.
_BAD_NAME = re.compile("[\udc80-\udcff\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\udc80-\udcff]")
_DIR_CACHE_SIZE = 4096


def name_problem(relpath: str) -> str | None:
    """Say why a path cannot be sent as a Jet ``relativePath``, or None when it can."""
    # Every character _BAD_NAME finds is unprintable (Cc, Cs): isprintable() is a cheap
    # first pass for the common name; the rest (e.g. a no-break space) get the regex.
    if relpath.isprintable() or _BAD_NAME.search(relpath) is None:
        return None
    if _SURROGATE.search(relpath) is not None:
        return "not valid UTF-8"
    return "control character in name"


def _compile(patterns: Sequence[str]) -> re.Pattern[str] | None:
    """One regex for a list of globs, so a check costs one match, not one per pattern."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


_MAGIC = re.compile(r"[*?\[]")


class _NameGlobs:
    """Globs matched against a file or directory name: ``X*``, ``*X`` and plain names by
    string methods, the others by one regex. Every file of every scan is checked against
    the default excludes, and ``*.tmp`` as a regex scans the whole name."""

    __slots__ = ("exact", "prefixes", "rest", "suffixes")

    def __init__(self, patterns: Sequence[str]) -> None:
        prefixes, suffixes, exact, rest = [], [], set(), []
        for pattern in patterns:
            if _MAGIC.search(pattern) is None:
                exact.add(pattern)
            elif pattern.endswith("*") and _MAGIC.search(pattern[:-1]) is None:
                prefixes.append(pattern[:-1])
            elif pattern.startswith("*") and _MAGIC.search(pattern[1:]) is None:
                suffixes.append(pattern[1:])
            else:
                rest.append(pattern)
        self.prefixes, self.suffixes = tuple(prefixes), tuple(suffixes)
        self.exact, self.rest = exact, _compile(rest)

    def match(self, name: str) -> bool:
        return (
            name.startswith(self.prefixes)
            or name.endswith(self.suffixes)
            or name in self.exact
            or (self.rest is not None and self.rest.match(name) is not None)
        )


def _split(patterns: Sequence[str]) -> tuple[_NameGlobs | None, re.Pattern[str] | None]:
    """Separate name patterns (no "/") from path patterns (with "/"), compiled."""
    names = [p for p in patterns if "/" not in p]
    paths = [p.strip("/") for p in patterns if "/" in p]
    return (_NameGlobs(names) if names else None), _compile(paths)


class PathFilter:
    """Decide whether a relative path is a delivery candidate; pure and cheap to call.

    Paths are relative to the folder root, use "/" separators and have no leading slash.
    Glob semantics (``fnmatch.fnmatchcase``: case-sensitive, ``*`` ``?`` ``[seq]``):

    - a pattern without "/" matches the basename (``*.mov`` matches ``a/b/clip.mov``);
    - a pattern with "/" matches the whole relative path, and ``*`` may cross "/"
      (``incoming/*.mxf`` matches ``incoming/x/y.mxf``); leading/trailing "/" are ignored.

    A file is a candidate when its path matches an include pattern and it is not excluded.
    Excludes are ``DEFAULT_EXCLUDES`` plus the user's; an exclude pattern that matches a
    directory (by name or by path) excludes everything below it, so ``.*`` hides
    ``a/.git/config`` as well as ``.clip.mov.Xa81k2`` (rsync). Include patterns apply to
    files only. Ready markers (a name ending with ``ready_marker``, which includes a folder
    marker named exactly ``ready_marker``) are never candidates: they are signals.
    """

    __slots__ = (
        "_dir_cache",
        "_exclude_name",
        "_exclude_path",
        "_include_all",
        "_include_name",
        "_include_path",
        "ready_marker",
    )

    def __init__(
        self,
        include: Sequence[str] = ("*",),
        exclude: Sequence[str] = (),
        ready_marker: str = "",
    ) -> None:
        self._include_name, self._include_path = _split(include)
        # The default: "*" takes every name, so the include patterns need no match at all.
        self._include_all = "*" in include
        self._exclude_name, self._exclude_path = _split((*DEFAULT_EXCLUDES, *exclude))
        self.ready_marker = ready_marker
        # Scans ask about thousands of files per directory: remember directory verdicts.
        self._dir_cache: dict[str, bool] = {}

    def __call__(self, relpath: str) -> bool:
        """True when the file at ``relpath`` may be delivered."""
        head, _, name = relpath.rpartition("/")
        if head and self._tree_excluded(head):
            return False
        return self._file_ok(name, relpath)

    def scanned_file(self, relpath: str) -> bool:
        """``self(relpath)`` for a file found by a scan, whose directories are not checked.

        The scanner prunes excluded directories top-down (``dir_excluded``), so the
        directories of every file it finds were accepted already.
        """
        return self._file_ok(relpath.rpartition("/")[2], relpath)

    def _file_ok(self, name: str, relpath: str) -> bool:
        # Asked once per file of every scan (a million at a restart): _hit inlined.
        if self.ready_marker and name.endswith(self.ready_marker):
            return False
        exclude_name, exclude_path = self._exclude_name, self._exclude_path
        if exclude_name is not None and exclude_name.match(name):
            return False
        if exclude_path is not None and exclude_path.match(relpath) is not None:
            return False
        return (
            self._include_all
            or _name_hit(self._include_name, name)
            or _hit(self._include_path, relpath)
        )

    def dir_excluded(self, reldir: str) -> bool:
        """True when the directory itself matches an exclude; its ancestors are not checked.

        The scanner prunes top-down, so a directory's ancestors were already accepted.
        """
        name = reldir.rpartition("/")[2]
        return _name_hit(self._exclude_name, name) or _hit(self._exclude_path, reldir)

    def excluded(self, relpath: str) -> bool:
        """True when ``relpath`` or any directory on its way matches an exclude pattern."""
        head = relpath.rpartition("/")[0]
        return self.dir_excluded(relpath) or (bool(head) and self._tree_excluded(head))

    def _tree_excluded(self, reldir: str) -> bool:
        verdict = self._dir_cache.get(reldir)
        if verdict is None:
            verdict = self.excluded(reldir)
            if len(self._dir_cache) >= _DIR_CACHE_SIZE:
                self._dir_cache.clear()  # crude bound; a miss only costs a few regex matches
            self._dir_cache[reldir] = verdict
        return verdict


def _name_hit(globs: _NameGlobs | None, name: str) -> bool:
    return globs is not None and globs.match(name)


def _hit(pattern: re.Pattern[str] | None, text: str) -> bool:
    return pattern is not None and pattern.match(text) is not None
