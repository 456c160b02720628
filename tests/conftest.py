"""Fixture modules shared by the whole suite."""

pytest_plugins = [
    "tests.emulator_fixtures",
    "tests.ledger_fixtures",
    "tests.pipeline_fixtures",
    "tests.daemon_fixtures",
    "tests.im_fixtures",
    "tests.target_fixtures",
]
