"""The target kinds jetwatch knows, each as a :class:`~jetwatch.targets.spec.TargetSpec`."""

from __future__ import annotations

from jetwatch.apis.jetstream import MODULE_MISSING, module_available
from jetwatch.config.settings import FolderSettings
from jetwatch.targets.jet import FORBIDDEN_FIX
from jetwatch.targets.spec import Finding, TargetSpec


def _jet_warnings(key: str, folder: FolderSettings) -> list[str]:
    return []


def _other_warnings(key: str, folder: FolderSettings) -> list[str]:
    if folder.profile_root is not None:
        return [f"{key}.profile_root: only used by jet folders (ignored)"]
    return []


def _jetstream_warnings(key: str, folder: FolderSettings) -> list[str]:
    warnings = _other_warnings(key, folder)
    if folder.job:
        warnings.insert(0, f"{key}.job: not used by jetstream folders (ignored)")
    return warnings


def _jetstream_host_problems() -> list[Finding]:
    return [] if module_available() else [Finding("jetstream", MODULE_MISSING)]


JET = TargetSpec(
    kind="jet",
    section="jet",
    api_name="Jet API",
    ref_word="job",
    ref_key="job",
    user_key="client_id",
    secret_key="client_secret",  # noqa: S106 - the name of a config key
    forbidden_fix=FORBIDDEN_FIX,
    # The profile and growing checks are the target's own (``JetTarget.check``): ``run``
    # holds such a folder just as ``check --online`` reports it.
    warnings=_jet_warnings,
)
INTEGRATION_MANAGER = TargetSpec(
    kind="integration-manager",
    section="integration_manager",
    api_name="Integration Manager API",
    ref_word="job config",
    ref_key="job",
    user_key="username",
    secret_key="password",  # noqa: S106 - the name of a config key
    forbidden_fix="this user may not run job configs: give it that permission in IM",
    warnings=_other_warnings,
)
JETSTREAM = TargetSpec(
    kind="jetstream",
    section="jetstream",
    api_name="JetStream server",
    ref_word="destination",
    ref_key="target",
    user_key="username",
    secret_key="password",  # noqa: S106 - the name of a config key
    forbidden_fix="this user may not create transfers on the JetStream server",
    address_key="host",
    warnings=_jetstream_warnings,
    host_problems=_jetstream_host_problems,
)
SPECS = {spec.kind: spec for spec in (JET, INTEGRATION_MANAGER, JETSTREAM)}


def spec_of(kind: str) -> TargetSpec:
    """The spec of a kind the config accepted; KeyError for anything else (a bug)."""
    return SPECS[kind]
