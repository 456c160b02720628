"""The ``check`` and ``jobs`` commands: the configuration offline, each folder's target online."""

from __future__ import annotations

import sys
from pathlib import Path

from jetwatch import logs
from jetwatch.app.output import print_problems, table
from jetwatch.config.load import load_settings
from jetwatch.config.settings import FolderSettings, Settings
from jetwatch.domain.target import TargetStatus
from jetwatch.errors import ApiError, AuthError, ConfigError, ExitCode
from jetwatch.targets.backends import Backends, jet_client
from jetwatch.targets.kinds import JET, SPECS, spec_of
from jetwatch.targets.spec import Finding, TargetSpec


def _load(
    path: Path | None, *, require_folders: bool = True, require_jet: bool = False
) -> Settings | None:
    try:
        settings = load_settings(path, require_folders=require_folders, require_jet=require_jet)
    except ConfigError as exc:
        print_problems(exc.problems)
        return None
    command_logging(settings)
    return settings


def command_logging(settings: Settings) -> None:
    """Logs of a one-shot command: stderr, redacted, warnings only unless level is debug.

    stdout keeps the command's own output (tables, JSON) clean for scripts.
    """
    level = "debug" if settings.log.level == "debug" else "warning"
    logs.configure_logging(level, settings.log.format)
    for spec in SPECS.values():
        secret = spec.secret(settings)
        if secret is not None:
            logs.register_secret(secret)


def _api_failure(spec: TargetSpec, what: str, exc: ApiError) -> ExitCode:
    if isinstance(exc, AuthError):
        key = f"{spec.section}.{spec.secret_key}"
        print(
            f"config error: {key}: the {spec.api_name} refused the credentials "
            f"(check {spec.section}.{spec.user_key} and {key})",
            file=sys.stderr,
        )
        return ExitCode.CONFIG
    print(f"{what} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    return ExitCode.FAILURE


def offline_warnings(settings: Settings) -> list[str]:
    """Things that are allowed (a share may be unmounted now) but worth saying."""
    warnings = []
    for i, f in enumerate(settings.folders):
        key = f"folders[{i}]"
        if not f.path.exists():
            warnings.append(f"{key}.path: {f.path} does not exist now (retried while running)")
        warnings += spec_of(f.target).warnings(key, f)
    return warnings


def offline_problems(settings: Settings) -> list[Finding]:
    """Problems only this host shows (the vendor module a target kind needs)."""
    kinds = dict.fromkeys(f.target for f in settings.folders)
    return [finding for kind in kinds for finding in spec_of(kind).host_problems()]


async def check_command(path: Path | None, *, online: bool) -> ExitCode:
    """Exit 0 when usable; 2 naming the key of each problem; 1 when only a target is paused."""
    settings = _load(path)
    if settings is None:
        return ExitCode.CONFIG
    for warning in offline_warnings(settings):
        print(f"warning: {warning}")
    for finding in offline_problems(settings):
        print(f"config error: {finding.key}: {finding.problem}", file=sys.stderr)
        return ExitCode.CONFIG
    print(f"config ok: {len(settings.folders)} folder(s)")
    if not online:
        return ExitCode.OK
    backends = Backends(settings)
    results = []
    try:
        for i, folder in enumerate(settings.folders):
            try:
                results.append(await _check_folder(backends, f"folders[{i}]", folder))
            except ApiError as exc:
                _print_network(backends)
                return _api_failure(spec_of(folder.target), "online check", exc)
            except ConfigError as exc:
                print_problems(exc.problems)
                return ExitCode.CONFIG
        _print_network(backends)
    finally:
        await backends.aclose()
    return _report(results)


def _print_network(backends: Backends) -> None:
    """Which proxy (and why) and which CAs each API was reached with."""
    for line in backends.network_lines():
        print(f"network: {line}")


def _report(results: list[tuple[list[str], list[Finding]]]) -> ExitCode:
    rows = [row for row, _ in results]
    print("\n".join(table(["folder", "job", "job id", "verdict"], rows)))
    findings = [f for _, found in results for f in found]
    for finding in findings:
        print(f"problem: {finding.key}: {finding.problem}", file=sys.stderr)
    if any(not f.transient for f in findings):
        return ExitCode.CONFIG
    return ExitCode.FAILURE if findings else ExitCode.OK


async def _check_folder(
    backends: Backends, key: str, folder: FolderSettings
) -> tuple[list[str], list[Finding]]:
    """The folder's target's own check, plus what only its kind can verify."""
    route = backends.route(folder)
    spec = spec_of(folder.target)
    status = await route.target.check()
    findings = _status_findings(spec, key, status)
    if status.ident is not None and not status.problem:
        findings += await spec.online_findings(route.target, key, folder, status.ident)
    verdict = "; ".join(f.problem for f in findings) or "ok"
    return [folder.label, route.ref, status.ident or "-", verdict], findings


def _status_findings(spec: TargetSpec, key: str, status: TargetStatus) -> list[Finding]:
    where = f"{key}.{spec.ref_key}"
    findings = []
    if status.problem:
        findings.append(Finding(f"{key}.{status.problem_key or spec.ref_key}", status.problem))
    if status.paused:
        findings.append(Finding(where, f"{spec.ref_word} {status.ident} is paused", transient=True))
    return findings


async def jobs_command(path: Path | None) -> ExitCode:
    """List the Jet jobs the credentials see: id, name, manual or hot folder, paused."""
    settings = _load(path, require_folders=False, require_jet=True)
    if settings is None:
        return ExitCode.CONFIG
    try:
        async with jet_client(settings.jet, max_retries=1) as client:
            jobs = await client.list_jobs()
    except ApiError as exc:
        return _api_failure(JET, "listing jobs", exc)
    rows = [
        [j.job_id, j.name, "manual" if j.is_manual else "hot folder", "yes" if j.paused else "no"]
        for j in jobs
    ]
    print("\n".join(table(["job id", "name", "kind", "paused"], rows)))
    return ExitCode.OK
