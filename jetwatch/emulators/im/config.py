"""Settings of one Integration Manager emulator: address, users, token lifetimes, run pacing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class UserSpec:
    """One user the emulator accepts at ``POST /api/login``."""

    username: str
    password: str


def parse_user(text: str) -> UserSpec:
    """Parse ``USERNAME:PASSWORD``; raise ValueError with a message fit for the command line."""
    username, sep, password = text.partition(":")
    if not sep or not username or not password:
        # The text holds a password, so the message never repeats it.
        raise ValueError("--user must look like USERNAME:PASSWORD")
    return UserSpec(username, password)


def default_users() -> list[UserSpec]:
    """The user of seed 003's examples (``admin``), so the emulator works out of the box."""
    return [UserSpec("admin", "admin-secret")]


@dataclass(slots=True)
class ImEmulatorConfig:
    """How to run one emulator; ``port=0`` picks a free port (see ``ImEmulatorServer.url``).

    Runs copy the files named in ``files_variable`` (absolute paths, a JSON array or one per
    line) into ``output_dir``, keeping their path relative to ``source_root`` when they are
    under it, else only their name. Without ``output_dir`` the files are read, not copied.
    """

    host: str = "127.0.0.1"
    port: int = 0
    output_dir: Path | None = None
    source_root: Path | None = None
    token_ttl_s: float = 36000.0  # seed 003: expires_in 36000
    refresh_ttl_s: float = 7 * 86400.0
    users: list[UserSpec] = field(default_factory=default_users)
    files_variable: str = "JETWATCH_FILES"
    run_step_s: float = 0.05  # time a run spends QUEUED and then RUNNING before its work
    max_active_runs: int = 4
