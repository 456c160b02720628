"""Transfer back ends behind one ``Target`` protocol: Jet, Integration Manager, JetStream."""

from jetwatch.targets.base import Progress, SubmitObject, Target, TargetStatus, batch_token
from jetwatch.targets.im import IntegrationManagerTarget
from jetwatch.targets.im_variables import DEFAULT_VARIABLES, VariableSource
from jetwatch.targets.jet import JetTarget
from jetwatch.targets.jetstream import JetStreamTarget
from jetwatch.targets.settings import IntegrationManagerSettings, JetStreamSettings, read_secret

TARGET_KINDS = (JetTarget.kind, IntegrationManagerTarget.kind, JetStreamTarget.kind)

__all__ = [
    "DEFAULT_VARIABLES",
    "TARGET_KINDS",
    "IntegrationManagerSettings",
    "IntegrationManagerTarget",
    "JetStreamSettings",
    "JetStreamTarget",
    "JetTarget",
    "Progress",
    "SubmitObject",
    "Target",
    "TargetStatus",
    "VariableSource",
    "batch_token",
    "read_secret",
]
