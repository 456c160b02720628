"""The Actian Integration Manager API (seed 003): an async client and its wire models."""
