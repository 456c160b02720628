"""Fixture modules shared by the whole suite."""

import os

# A host's proxy must not steer tests of loopback servers; tests that need one set it.
for _name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
    os.environ.pop(_name, None)
    os.environ.pop(_name.lower(), None)

pytest_plugins = [
    "tests.fixtures.emulator",
    "tests.fixtures.ledger",
    "tests.fixtures.postgres",
    "tests.fixtures.pipeline",
    "tests.fixtures.daemon",
    "tests.fixtures.im",
    "tests.fixtures.targets",
    "tests.fixtures.browser",
    "tests.fixtures.host",
    "tests.fixtures.network",
]
