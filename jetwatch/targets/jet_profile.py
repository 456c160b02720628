"""Whether a Jet folder may be delivered from at all: the rules ``run`` and ``check --online``
share (:meth:`jetwatch.targets.jet.JetTarget.check`).

A delivery names paths relative to the job's source storage profile: a folder outside it
would make Jet copy the profile's file of the same name, not ours. A ``growing = true``
folder hands files over while they are written, which only a job that follows growing
objects copies whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from jetwatch.apis.jet.models import Job, StorageProfile
from jetwatch.config.settings import FolderSettings
from jetwatch.domain.states import HoldReason


@dataclass(frozen=True, slots=True)
class FolderProblem:
    """Why batches of a folder cannot go to its job: the folder key it is about and why."""

    key: str  # "path", "profile_root", "growing" or "job"
    problem: str
    hold: HoldReason


def _is_under(path: Path, root: Path) -> bool:
    path_s, root_s = os.path.normpath(path), os.path.normpath(root).rstrip("/")
    return path_s == root_s or path_s.startswith(root_s + "/") or root_s == ""


def _same(a: Path, b: Path) -> bool:
    return os.path.normpath(a) == os.path.normpath(b)


def _resolved(path: Path) -> Path:
    """``path`` with its symlinks resolved (as far as it exists; blocking: a few lstats)."""
    return Path(os.path.realpath(path))


def profile_path(profile: StorageProfile) -> Path | None:
    """The folder of a ``file://`` profile; None for cloud storage (nothing to compare)."""
    parts = urlsplit(profile.url or "")
    if parts.scheme != "file":
        return None
    return Path(unquote(parts.path))


def profile_problem(
    folder: FolderSettings, job: Job, profiles: list[StorageProfile]
) -> FolderProblem | None:
    """The folder lies under the job's source profile and ``profile_root`` matches it.

    The profile's path is where the Jet agent sees the files. When this host sees them
    elsewhere (a container with the share mounted at another path) ``profile_root`` says
    where the profile's root is here, and is trusted: the folder must then lie under it
    (the config check makes sure of that). A folder reached through a symlink counts where
    the link leads (blocking: call it in a worker thread).
    """
    source = next((p for p in profiles if p.storage_profile_id == job.source_profile_id), None)
    if source is None:
        why = f"source storage profile {job.source_profile_id} not found"
        return FolderProblem("job", why, HoldReason.UNUSABLE)
    root = profile_path(source)
    if root is None:
        return None
    under = _is_under(folder.path, root) or _is_under(_resolved(folder.path), _resolved(root))
    if under:
        if not (_same(folder.root, root) or _same(_resolved(folder.root), _resolved(root))):
            # relativePath is computed from profile_root: Jet would look in the wrong place.
            why = f"set profile_root = {str(root)!r} (the source profile's path)"
            return FolderProblem("profile_root", why, HoldReason.OUTSIDE_PROFILE)
        return None
    if folder.profile_root is not None and os.path.normpath(folder.profile_root) != str(root):
        return None  # the profile is mounted elsewhere on this host: profile_root says where
    why = f"path {folder.path} is not under the job's source profile {root}"
    return FolderProblem("path", why, HoldReason.OUTSIDE_PROFILE)


def growing_problem(folder: FolderSettings, job: Job) -> FolderProblem | None:
    """``growing = true`` needs a job with ``transferOptions.areGrowingObjects``."""
    if not folder.growing or job.follows_growing:
        return None
    why = (
        "growing = true needs a job that follows growing objects "
        "(transferOptions.areGrowingObjects); this one copies what exists when it runs"
    )
    return FolderProblem("growing", why, HoldReason.NOT_GROWING)
