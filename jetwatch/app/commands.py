"""The ``check`` and ``jobs`` commands: the configuration offline, each folder's target online."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from jetwatch import logs
from jetwatch.apis.webhook import url_origin
from jetwatch.app.output import plural, print_problems, table
from jetwatch.config.load import load_settings
from jetwatch.config.settings import FolderSettings, Settings, parse_listen
from jetwatch.domain.states import HoldReason
from jetwatch.domain.target import TargetStatus
from jetwatch.errors import (
    ApiError,
    AuthError,
    ConfigError,
    ExitCode,
    ForbiddenError,
    OutcomeUnknownError,
    TransportError,
)
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
    # Warnings (retries, a rejected request) would interleave JSON with the command's own
    # sentences, which already say what failed and how to fix it.
    level = "debug" if settings.log.level == "debug" else "error"
    logs.configure_logging(level, settings.log.format)
    for spec in SPECS.values():
        secret = spec.secret(settings)
        if secret is not None:
            logs.register_secret(secret)
    for ops_secret in (settings.http.token, settings.notify.webhook_url):
        if ops_secret is not None:
            logs.register_secret(ops_secret)


def _api_failure(settings: Settings, spec: TargetSpec, what: str, exc: ApiError) -> ExitCode:
    section = spec.section_of(settings)
    if isinstance(exc, AuthError):
        key = f"{spec.section}.{spec.secret_key}"
        print(
            f"config error: {key}: the {spec.api_name} refused the credentials "
            f"(check {spec.section}.{spec.user_key} and {key})",
            file=sys.stderr,
        )
        return ExitCode.CONFIG
    if isinstance(exc, ForbiddenError):
        user = getattr(section, spec.user_key, None)
        print(
            f"{what} failed: {exc} ({spec.section}.{spec.user_key} = {user!r}): "
            f"{spec.forbidden_fix}",
            file=sys.stderr,
        )
        return ExitCode.CONFIG
    if isinstance(exc, TransportError | OutcomeUnknownError):
        address = getattr(section, spec.address_key, None)
        print(
            f"{what} failed: the {spec.api_name} at {address} could not be used: {exc}; "
            f"check {spec.section}.{spec.address_key}, the network and any proxy",
            file=sys.stderr,
        )
        return ExitCode.FAILURE
    print(f"{what} failed: the {spec.api_name} refused a request: {exc}", file=sys.stderr)
    return ExitCode.FAILURE


def offline_warnings(settings: Settings) -> list[str]:
    """Things that are allowed (a share may be unmounted now) but worth saying."""
    warnings = []
    for i, f in enumerate(settings.folders):
        key = f"folders[{i}]"
        if not f.path.exists():
            warnings.append(f"{key}.path: {f.path} does not exist now (retried while running)")
        warnings += spec_of(f.target).warnings(key, f)
    return warnings + ops_warnings(settings)


def _loopback(host: str | None) -> bool:
    return host in ("localhost", "::1") or (host or "").startswith("127.")


def ops_warnings(settings: Settings) -> list[str]:
    """The console's actions or the webhook exposed more than they need to be."""
    warnings = []
    address = parse_listen(settings.http.listen)
    if settings.http.actions and address is not None and not _loopback(address[0]):
        warnings.append(
            f"http.actions: on, and http.listen {settings.http.listen} is reachable from other "
            "hosts: the token travels in clear unless a TLS proxy is in front"
        )
    url = settings.notify.webhook_url
    if url is not None:
        parts = urlsplit(url.get_secret_value())
        if parts.scheme == "http" and not _loopback(parts.hostname):
            warnings.append(
                "notify.webhook_url: plain http to another host: the URL (its key) and the "
                "messages cross the network unencrypted"
            )
    return warnings


def ops_lines(settings: Settings) -> list[str]:
    """What ``check`` says about the console and the notifications (never a secret)."""
    http, notify = settings.http, settings.notify
    if parse_listen(http.listen) is None:
        lines = ["console: off (http.listen is empty)"]
    else:
        actions = "actions on, token set" if http.actions else "read-only"
        lines = [f"console: http://{http.listen}/ ({actions})"]
    if notify.webhook_url is None:
        lines.append("notify: off (no notify.webhook_url)")
    else:
        origin = url_origin(notify.webhook_url.get_secret_value())
        lines.append(f"notify: webhook at {origin} for {', '.join(notify.events) or 'no events'}")
    return lines


def offline_problems(settings: Settings) -> list[Finding]:
    """Problems only this host shows: the vendor module a target kind needs, directories
    jetwatch must write (done_dir, failed_dir, the ledger's) that cannot exist or be written."""
    kinds = dict.fromkeys(f.target for f in settings.folders)
    found = [finding for kind in kinds for finding in spec_of(kind).host_problems()]
    wanted = [("ledger.path", settings.ledger.path.parent)]
    for i, folder in enumerate(settings.folders):
        wanted += [(f"folders[{i}].{attr}", getattr(folder, attr)) for attr in DIR_KEYS]
    for key, path in wanted:
        problem = None if path is None else writable_dir_problem(path)
        if problem is not None:
            found.append(Finding(key, problem))
    ledger = settings.ledger.path
    if ledger.exists() and not os.access(ledger, os.R_OK | os.W_OK):
        found.append(Finding("ledger.path", f"{ledger} is not writable by this user"))
    return found


DIR_KEYS = ("done_dir", "failed_dir")


def writable_dir_problem(path: Path) -> str | None:
    """Why jetwatch (as this user) could not create or write the directory ``path``."""
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        what = (
            "is not a directory" if existing == path else f"cannot be created: {existing} is a file"
        )
        return f"{path} {what}"
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path else f" ({existing}, where it would be created)"
        return f"{path} is not writable by this user (uid {os.geteuid()}){where}"
    return None


async def check_command(path: Path | None, *, online: bool) -> ExitCode:
    """Exit 0 when usable; 2 naming the key of each problem; 1 when only a target is paused."""
    settings = _load(path)
    if settings is None:
        return ExitCode.CONFIG
    for warning in offline_warnings(settings):
        print(f"warning: {warning}")
    problems = offline_problems(settings)
    for finding in problems:
        print(f"config error: {finding.key}: {finding.problem}", file=sys.stderr)
    if problems:
        return ExitCode.CONFIG
    print(f"config ok: {plural(len(settings.folders), 'folder')}")
    for line in ops_lines(settings):
        print(line)
    if not online:
        return ExitCode.OK
    backends = Backends(settings)
    results = []
    try:
        for i, folder in enumerate(settings.folders):
            try:
                results.append(await _check_folder(backends, settings, f"folders[{i}]", folder))
            except ApiError as exc:
                _print_network(backends)
                return _api_failure(settings, spec_of(folder.target), "online check", exc)
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
    backends: Backends, settings: Settings, key: str, folder: FolderSettings
) -> tuple[list[str], list[Finding]]:
    """The folder's target's own check, plus what only its kind can verify."""
    route = backends.route(folder)
    spec = spec_of(folder.target)
    status = await route.target.check()
    findings = _status_findings(spec, key, status, settings)
    if status.ident is not None and not status.problem:
        findings += await spec.online_findings(route.target, key, folder, status.ident)
    verdict = "; ".join(f.problem for f in findings) or "ok"
    return [folder.label, route.ref, status.ident or "-", verdict], findings


def _status_findings(
    spec: TargetSpec, key: str, status: TargetStatus, settings: Settings
) -> list[Finding]:
    where = f"{key}.{spec.ref_key}"
    findings = []
    if status.problem:
        problem = status.problem
        if status.hold is HoldReason.FORBIDDEN:  # say who was refused
            user = getattr(spec.section_of(settings), spec.user_key, None)
            problem = f"{problem} ({spec.section}.{spec.user_key} = {user!r})"
        findings.append(Finding(f"{key}.{status.problem_key or spec.ref_key}", problem))
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
        return _api_failure(settings, JET, "listing jobs", exc)
    rows = [
        [j.job_id, j.name, "manual" if j.is_manual else "hot folder", "yes" if j.paused else "no"]
        for j in jobs
    ]
    print("\n".join(table(["job id", "name", "kind", "paused"], rows)))
    return ExitCode.OK
