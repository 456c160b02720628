"""Fakes of third-party layers we cannot run in tests (vendor modules)."""
