"""What the rest of jetwatch may know of a target kind: a :class:`TargetSpec` per kind.

Names, config section, wording and the few checks only one kind has live here and in
:mod:`jetwatch.targets.kinds`; code outside ``targets/`` and ``config/`` asks the spec of a
folder's kind instead of comparing kind strings, so a fourth target touches this folder only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from jetwatch.config.settings import FolderSettings, Settings
from jetwatch.domain.target import Target


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong with a folder's target; ``transient`` ones (paused) may fix themselves."""

    key: str
    problem: str
    transient: bool = False


def _no_warnings(key: str, folder: FolderSettings) -> list[str]:
    return []


def _no_host_problems() -> list[Finding]:
    return []


async def _no_findings(
    target: Target, key: str, folder: FolderSettings, ident: str
) -> list[Finding]:
    return []


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """One target kind as the daemon, the commands and the views see it."""

    kind: str  # the ``[[folders]] target`` value
    section: str  # the config section with its connection and credentials
    api_name: str  # how the API is named in messages: "Jet API"
    ref_word: str  # what a folder names there: "job", "job config", "destination"
    ref_key: str  # the folder key a problem with that is reported under: "job" or "target"
    user_key: str  # the section's key naming who logs in
    secret_key: str  # the section's secret key (``<key>_file`` is its file variant)
    # What to do when the API answers 403: the credentials lack a role or permission.
    forbidden_fix: str = "use credentials allowed to submit"
    address_key: str = "base_url"  # the section's key saying where the API answers
    # Config that is allowed but worth a word (``check``), e.g. a key this kind ignores.
    warnings: Callable[[str, FolderSettings], list[str]] = _no_warnings
    # What this host lacks to run the kind at all (a vendor module).
    host_problems: Callable[[], list[Finding]] = _no_host_problems
    # ``check --online``: what only this kind can verify once the target resolved.
    online_findings: Callable[[Target, str, FolderSettings, str], Awaitable[list[Finding]]] = field(
        default=_no_findings
    )

    def section_of(self, settings: Settings) -> Any:
        """The kind's config section (None when the config has none)."""
        return getattr(settings, self.section)

    def secret(self, settings: Settings) -> SecretStr | None:
        """The secret this kind logs in with, if its section is configured."""
        section = self.section_of(settings)
        return None if section is None else getattr(section, self.secret_key)

    def poll_bounds(self, settings: Settings) -> tuple[float, float] | None:
        """(poll_min_s, poll_max_s) from the kind's section."""
        section = self.section_of(settings)
        if section is None:
            return None
        return (section.poll_min_seconds, section.poll_max_seconds)

    def stall_s(self, settings: Settings) -> float | None:
        """How long a submission may show no change before it counts as stalled (None:
        this kind does not detect stalls)."""
        section = self.section_of(settings)
        value = getattr(section, "stall_seconds", None) if section is not None else None
        return None if value is None else float(value)

    def event(self, what: str) -> str:
        """A log event name of this kind: ``jet_api_ok``, ``integration_manager_api_ok``."""
        return f"{self.kind.replace('-', '_')}_{what}"
