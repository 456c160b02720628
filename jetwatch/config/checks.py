"""Cross-checks of ``[[folders]]`` entries that no single field can see (for config.py)."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jetwatch.config.settings import FolderSettings

Problem = tuple[str, str]


def folder_problems(folders: list[tuple[int, FolderSettings]]) -> list[Problem]:
    """Problems of each folder on its own, duplicate names, and folders that overlap."""
    problems: list[Problem] = []
    names: set[str] = set()
    for i, folder in folders:
        problems += _check_folder(f"folders[{i}]", folder)
        if folder.label in names:
            problems.append((f"folders[{i}].name", f"duplicate folder name {folder.label!r}"))
        names.add(folder.label)
    problems += _check_overlaps(folders)
    return problems


def _check_folder(key: str, folder: FolderSettings) -> list[Problem]:
    problems: list[Problem] = []
    path = folder.path
    if not path.is_absolute():
        problems.append((f"{key}.path", f"{path} must be an absolute path"))
    elif path.exists() and not path.is_dir():
        problems.append((f"{key}.path", f"{path} is not a directory"))
    if folder.profile_root is not None and not _inside(path, folder.profile_root):
        problems.append((f"{key}.profile_root", f"must contain the folder path {path}"))
    if folder.post_action == "move" and folder.done_dir is None:
        problems.append((f"{key}.done_dir", 'required when post_action = "move"'))
    for attr in ("done_dir", "failed_dir"):
        target: Path | None = getattr(folder, attr)
        if target is not None and not target.is_absolute():
            problems.append((f"{key}.{attr}", f"{target} must be an absolute path"))
    if folder.target == "jet" and not folder.job:
        problems.append((f"{key}.job", 'required for target "jet": a job id or exact job name'))
    if "/" in folder.ready_marker:
        problems.append((f"{key}.ready_marker", "must be a suffix such as '.ready', no '/'"))
    if folder.max_wait_seconds < folder.batch_linger_seconds:
        problems.append((f"{key}.max_wait_seconds", "must be >= batch_linger_seconds"))
    return problems


def _check_overlaps(folders: list[tuple[int, FolderSettings]]) -> list[Problem]:
    """Folders must not nest, and no folder may move files into a watched folder."""
    problems = []
    for i, a in folders:
        for j, b in folders:
            if i < j and (_inside(a.path, b.path) or _inside(b.path, a.path)):
                problems.append(
                    (f"folders[{j}].path", f"{b.path} overlaps folders[{i}].path {a.path}")
                )
            for attr in ("done_dir", "failed_dir"):
                target: Path | None = getattr(a, attr)
                if target is not None and _inside(target, b.path):
                    where = "inside the watched folder" if i == j else f"inside folders[{j}].path"
                    problems.append(
                        (f"folders[{i}].{attr}", f"{target} is {where}: files would loop")
                    )
    return problems


def _inside(child: Path, parent: Path) -> bool:
    """Lexical containment (no symlink resolution: a share may be unmounted at check time)."""
    c, p = PurePosixPath(os.path.normpath(child)), PurePosixPath(os.path.normpath(parent))
    return c == p or p in c.parents
