"""Fixture modules shared by the whole suite."""

pytest_plugins = [
    "tests.fixtures.emulator",
    "tests.fixtures.ledger",
    "tests.fixtures.postgres",
    "tests.fixtures.pipeline",
    "tests.fixtures.daemon",
    "tests.fixtures.im",
    "tests.fixtures.targets",
]
