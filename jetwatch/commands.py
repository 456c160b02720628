"""The ``check`` and ``jobs`` commands: validate a config offline and online, list jobs."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

from jetwatch.config import FolderSettings, Settings, load_settings
from jetwatch.errors import ConfigError, JetError
from jetwatch.jet.client import JetClient
from jetwatch.jet.models import Job, StorageProfile
from jetwatch.jobs import job_problem, match_job

EXIT_OK, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2


def _load(path: Path | None) -> Settings | None:
    try:
        return load_settings(path)
    except ConfigError as exc:
        for key, message in exc.problems:
            print(f"config error: {key}: {message}", file=sys.stderr)
        return None


def _client(settings: Settings) -> JetClient:
    jet = settings.jet
    assert jet.client_secret is not None
    return JetClient(
        jet.base_url,
        jet.client_id,
        jet.client_secret,
        request_timeout_s=jet.request_timeout_seconds,
        connect_timeout_s=jet.connect_timeout_seconds,
        max_retries=1,
    )


def offline_warnings(settings: Settings) -> list[str]:
    """Things that are allowed (a share may be unmounted now) but worth saying."""
    return [
        f"folders[{i}].path: {f.path} does not exist now (it is retried while running)"
        for i, f in enumerate(settings.folders)
        if not f.path.exists()
    ]


async def check_command(path: Path | None, *, online: bool) -> int:
    settings = _load(path)
    if settings is None:
        return EXIT_CONFIG
    for warning in offline_warnings(settings):
        print(f"warning: {warning}")
    print(f"config ok: {len(settings.folders)} folder(s)")
    if not online:
        return EXIT_OK
    try:
        async with _client(settings) as client:
            jobs = await client.list_jobs()
            profiles = await client.list_storage_profiles()
            rows = [await _check_folder(client, f, jobs, profiles) for f in settings.folders]
    except JetError as exc:
        print(f"online check failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAIL
    print(_table(["folder", "job", "job id", "verdict"], rows))
    return EXIT_OK if all(row[3] == "ok" for row in rows) else EXIT_CONFIG


async def _check_folder(
    client: JetClient, folder: FolderSettings, jobs: list[Job], profiles: list[StorageProfile]
) -> list[str]:
    job, why = match_job(folder.job, jobs)
    if job is None:
        return [folder.label, folder.job, "-", why]
    job = await client.get_job(job.job_id)
    problems = [p for p in (job_problem(job), "paused" if job.paused else "") if p]
    source = next((p for p in profiles if p.storage_profile_id == job.source_profile_id), None)
    if source is not None:
        problems += _profile_problems(folder, source)
    return [folder.label, folder.job, job.job_id, "; ".join(problems) or "ok"]


def _profile_problems(folder: FolderSettings, profile: StorageProfile) -> list[str]:
    parts = urlsplit(profile.url or "")
    if parts.scheme != "file":
        return []  # cloud storage: the folder cannot be compared with it
    profile_path = Path(unquote(parts.path))
    problems = []
    if folder.root != profile_path:
        problems.append(f"profile_root {folder.root} != source profile path {profile_path}")
    try:
        folder.path.relative_to(profile_path)
    except ValueError:
        problems.append(f"path {folder.path} is not under the source profile {profile_path}")
    return problems


async def jobs_command(path: Path | None) -> int:
    try:
        settings = load_settings(path, require_folders=False)
    except ConfigError as exc:
        for key, message in exc.problems:
            print(f"config error: {key}: {message}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        async with _client(settings) as client:
            jobs = await client.list_jobs()
    except JetError as exc:
        print(f"listing jobs failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAIL
    rows = [
        [j.job_id, j.name, "manual" if j.is_manual else "hot folder", "yes" if j.paused else "no"]
        for j in jobs
    ]
    print(_table(["job id", "name", "kind", "paused"], rows))
    return EXIT_OK


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    return "\n".join(lines)
