"""Fixture modules shared by the whole suite."""

pytest_plugins = [
    "tests.fixtures.emulator",
    "tests.fixtures.ledger",
    "tests.fixtures.pipeline",
    "tests.fixtures.daemon",
    "tests.fixtures.im",
    "tests.fixtures.targets",
    "tests.fixtures.browser",
    "tests.fixtures.host",
]
