pytest_plugins = ["tests.emulator_fixtures", "tests.ledger_fixtures"]
