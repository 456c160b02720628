"""Configuration: settings from TOML and ``JETWATCH_*`` env, cross-checks and secret files."""
