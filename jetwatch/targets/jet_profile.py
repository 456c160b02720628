"""Whether a Jet folder lies under its job's source storage profile (``check --online``).

A delivery names paths relative to the profile: a folder outside it would make Jet copy the
profile's file of the same name, not ours.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from jetwatch.apis.jet.client import JetClient
from jetwatch.apis.jet.models import StorageProfile
from jetwatch.config.settings import FolderSettings
from jetwatch.targets.spec import Finding


async def profile_findings(
    client: JetClient, key: str, folder: FolderSettings, job_id: str
) -> list[Finding]:
    """The folder lies under the job's source profile and profile_root matches it."""
    job = await client.get_job(job_id)
    profiles = await client.list_storage_profiles()
    source = next((p for p in profiles if p.storage_profile_id == job.source_profile_id), None)
    if source is None:
        why = f"source storage profile {job.source_profile_id} not found"
        return [Finding(f"{key}.job", why)]
    return _profile_findings(key, folder, source)


def _profile_findings(key: str, folder: FolderSettings, profile: StorageProfile) -> list[Finding]:
    parts = urlsplit(profile.url or "")
    if parts.scheme != "file":
        return []  # cloud storage: the folder cannot be compared with it
    profile_path = Path(unquote(parts.path))
    try:
        folder.path.relative_to(profile_path)
    except ValueError:
        why = f"path {folder.path} is not under the job's source profile {profile_path}"
        return [Finding(f"{key}.path", why)]
    if folder.root != profile_path:
        # relativePath is computed from profile_root: Jet would look in the wrong place.
        why = f"set profile_root = {str(profile_path)!r} (the source profile's path)"
        return [Finding(f"{key}.profile_root", why)]
    return []
