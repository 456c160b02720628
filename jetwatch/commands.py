"""The ``check`` and ``jobs`` commands, and what ``status`` asks a running daemon."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from jetwatch import logs
from jetwatch.backends import Backends
from jetwatch.config import SECRET_KEYS, TARGET_SECTIONS, FolderSettings, Settings, load_settings
from jetwatch.errors import ConfigError, JetAuthError, JetError
from jetwatch.jet.client import JetClient
from jetwatch.jet.models import StorageProfile
from jetwatch.ops import parse_listen
from jetwatch.registry import api_name
from jetwatch.targets.base import TargetStatus
from jetwatch.targets.jetstream_api import MODULE_MISSING, module_available

EXIT_OK, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2
DAEMON_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong with a folder's job; ``transient`` ones (paused) may fix themselves."""

    key: str
    problem: str
    transient: bool = False


def _load(
    path: Path | None, *, require_folders: bool = True, require_jet: bool = False
) -> Settings | None:
    try:
        settings = load_settings(path, require_folders=require_folders, require_jet=require_jet)
    except ConfigError as exc:
        for key, message in exc.problems:
            print(f"config error: {key}: {message}", file=sys.stderr)
        return None
    command_logging(settings)
    return settings


def command_logging(settings: Settings) -> None:
    """Logs of a one-shot command: stderr, redacted, warnings only unless level is debug.

    stdout keeps the command's own output (tables, JSON) clean for scripts.
    """
    level = "debug" if settings.log.level == "debug" else "warning"
    logs.configure_logging(level, settings.log.format)
    secrets = [settings.jet.client_secret]
    secrets += [s.password for s in (settings.integration_manager, settings.jetstream) if s]
    for secret in secrets:
        if secret is not None:
            logs.register_secret(secret)


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


def _api_failure(kind: str, what: str, exc: JetError) -> int:
    if isinstance(exc, JetAuthError):
        section = TARGET_SECTIONS[kind]
        key = f"{section}.{SECRET_KEYS[section]}"
        user = "client_id" if kind == "jet" else "username"
        print(
            f"config error: {key}: the {api_name(kind)} refused the credentials "
            f"(check {section}.{user} and {key})",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    print(f"{what} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    return EXIT_FAIL


def offline_warnings(settings: Settings) -> list[str]:
    """Things that are allowed (a share may be unmounted now) but worth saying."""
    warnings = []
    for i, f in enumerate(settings.folders):
        if not f.path.exists():
            warnings.append(
                f"folders[{i}].path: {f.path} does not exist now (retried while running)"
            )
        if f.target == "jetstream" and f.job:
            warnings.append(f"folders[{i}].job: not used by jetstream folders (ignored)")
        if f.target != "jet" and f.profile_root is not None:
            warnings.append(f"folders[{i}].profile_root: only used by jet folders (ignored)")
    return warnings


def offline_problems(settings: Settings) -> list[Finding]:
    """Problems only this host shows: the vendor module of JetStream folders."""
    if any(f.target == "jetstream" for f in settings.folders) and not module_available():
        return [Finding("jetstream", MODULE_MISSING)]
    return []


async def check_command(path: Path | None, *, online: bool) -> int:
    """Exit 0 when usable; 2 naming the key of each problem; 1 when only a target is paused."""
    settings = _load(path)
    if settings is None:
        return EXIT_CONFIG
    for warning in offline_warnings(settings):
        print(f"warning: {warning}")
    for finding in offline_problems(settings):
        print(f"config error: {finding.key}: {finding.problem}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"config ok: {len(settings.folders)} folder(s)")
    if not online:
        return EXIT_OK
    backends = Backends(settings)
    results = []
    try:
        for i, folder in enumerate(settings.folders):
            try:
                results.append(await _check_folder(backends, f"folders[{i}]", folder))
            except JetError as exc:
                return _api_failure(folder.target, "online check", exc)
            except ConfigError as exc:
                for key, message in exc.problems:
                    print(f"config error: {key}: {message}", file=sys.stderr)
                return EXIT_CONFIG
    finally:
        await backends.aclose()
    return _report(results)


def _report(results: list[tuple[list[str], list[Finding]]]) -> int:
    rows = [row for row, _ in results]
    print(_table(["folder", "job", "job id", "verdict"], rows))
    findings = [f for _, found in results for f in found]
    for finding in findings:
        print(f"problem: {finding.key}: {finding.problem}", file=sys.stderr)
    if any(not f.transient for f in findings):
        return EXIT_CONFIG
    return EXIT_FAIL if findings else EXIT_OK


async def _check_folder(
    backends: Backends, key: str, folder: FolderSettings
) -> tuple[list[str], list[Finding]]:
    """The folder's target's own check, plus the profile check of Jet folders."""
    route = backends.route(folder)
    status = await route.target.check()
    findings = _status_findings(key, folder, status)
    if folder.target == "jet" and status.ident is not None and not status.problem:
        findings += await _jet_profile_findings(backends.jet_client, key, folder, status.ident)
    verdict = "; ".join(f.problem for f in findings) or "ok"
    return [folder.label, route.ref, status.ident or "-", verdict], findings


def _status_findings(key: str, folder: FolderSettings, status: TargetStatus) -> list[Finding]:
    where = f"{key}.target" if folder.target == "jetstream" else f"{key}.job"
    findings = []
    if status.problem:
        findings.append(Finding(where, status.problem))
    if status.paused:
        what = {"jet": "job", "integration-manager": "job config"}.get(folder.target, "target")
        findings.append(Finding(where, f"{what} {status.ident} is paused", transient=True))
    return findings


async def _jet_profile_findings(
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


async def jobs_command(path: Path | None) -> int:
    """List the jobs the credentials see: id, name, manual or hot folder, paused."""
    settings = _load(path, require_folders=False, require_jet=True)
    if settings is None:
        return EXIT_CONFIG
    try:
        async with _client(settings) as client:
            jobs = await client.list_jobs()
    except JetError as exc:
        return _api_failure("jet", "listing jobs", exc)
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


# ---- the running daemon, as its ops endpoint shows it ------------------------------------


def daemon_url(listen: str) -> str | None:
    """Where a daemon with this ``[http] listen`` answers on this host; None when unknown."""
    address = parse_listen(listen)
    if address is None or address[1] == 0:
        return None
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(address[0], address[0])
    return f"http://[{host}]:{address[1]}" if ":" in host else f"http://{host}:{address[1]}"


def daemon_view(listen: str, timeout_s: float = DAEMON_TIMEOUT_S) -> dict[str, Any]:
    """``/status`` of the daemon, reduced to what the ledger cannot tell (API, jobs, ready)."""
    url = daemon_url(listen)
    if url is None:
        return {"url": None, "reachable": False, "error": "ops HTTP disabled or on port 0"}
    try:
        with urllib.request.urlopen(f"{url}/status", timeout=timeout_s) as response:  # noqa: S310
            data = json.loads(response.read())
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return {"url": url, "reachable": False, "error": str(reason)}
    keys = ("ready", "reasons", "api", "jobs")
    return {"url": url, "reachable": True, **{k: data.get(k) for k in keys}}


def render_daemon(view: dict[str, Any]) -> str:
    """The daemon section of ``jetwatch status``."""
    if not view["reachable"]:
        where = f" at {view['url']}" if view["url"] else ""
        return f"DAEMON  not answering{where} ({view['error']})\n"
    lines = [f"DAEMON  {view['url']}  {'ready' if view['ready'] else 'NOT READY'}"]
    lines += [f"  - {reason}" for reason in view.get("reasons") or []]
    rows = [
        [
            j.get("folder") or "-",
            j.get("target") or "jet",
            j["job"],
            j["job_id"] or "-",
            "yes" if j["paused"] else "no",
            j["problem"] or "",
        ]
        for j in view.get("jobs") or []
    ]
    if rows:
        table = _table(["FOLDER", "TARGET", "JOB", "JOB ID", "PAUSED", "PROBLEM"], rows)
        lines += ["  " + line for line in table.splitlines()]
    return "\n".join(lines) + "\n"
