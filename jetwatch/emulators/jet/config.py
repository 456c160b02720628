"""Settings of one emulator instance: address, persistence, token lifetime, clients."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class Role(StrEnum):
    """Jet API roles (seed 000): full access, or read access to the jobs endpoints."""

    S2S_ADMIN = "S2S_ADMIN"
    JET_VIEW_ONLY = "JET_VIEW_ONLY"


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """One OAuth client the emulator accepts."""

    client_id: str
    client_secret: str
    role: Role = Role.S2S_ADMIN


def parse_client(text: str) -> ClientSpec:
    """Parse ``ID:SECRET[:ROLE]``; raise ValueError with a message fit for the command line."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        # The text may hold a secret, so the message never repeats it.
        raise ValueError(f"--client must look like ID:SECRET[:ROLE] ({len(parts)} field(s) given)")
    role_name = parts[2] if len(parts) == 3 else Role.S2S_ADMIN.value
    try:
        role = Role(role_name.upper())
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise ValueError(f"--client role must be one of {allowed}, got {role_name!r}") from None
    return ClientSpec(parts[0], parts[1], role)


def default_clients() -> list[ClientSpec]:
    """The clients documented in JET-API.md, so `jetwatch emulator` works out of the box."""
    return [
        ClientSpec("demo", "demo-secret", Role.S2S_ADMIN),
        ClientSpec("viewer", "viewer-secret", Role.JET_VIEW_ONLY),
    ]


@dataclass(slots=True)
class EmulatorConfig:
    """How to run one emulator; ``port=0`` picks a free port (see ``EmulatorServer.url``)."""

    host: str = "127.0.0.1"
    port: int = 0
    state_dir: Path | None = None
    token_ttl_s: float = 3600.0
    bandwidth_bps: int = 0  # per transfer; 0 = unlimited
    clients: list[ClientSpec] = field(default_factory=default_clients)
    # Not on the command line: knobs for tests and benchmarks.
    max_objects_per_transfer: int = 500
    max_active_transfers: int = 8
    save_interval_s: float = 0.2
