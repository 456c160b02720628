"""Settings of one emulator instance: address, persistence, token lifetime, clients, and the
assumptions beyond the known Jet API that tests of optional code paths may turn on."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
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


class PausedBacklog(StrEnum):
    """What a delivery in flight shows after its job was paused with ``clearBacklogOnPause``.

    Jet drops the work; what it then reports for the delivery is not documented, so both
    outcomes are modelled (``--paused-backlog``).
    """

    FAIL = "fail"  # the delivery ends FAILED; what it had not copied counts as failed
    STALL = "stall"  # the delivery never moves again: it stays in its state for ever


@dataclass(frozen=True, slots=True)
class Assumptions:
    """Conveniences beyond the known API (JET-API.md), each off unless a flag turns it on."""

    job_deliveries: bool = False  # GET /v1/jobs[/{id}] lists the job's delivery ids
    delivery_objects: bool = False  # GET .../deliveries/{id} shows the objects as posted
    job_files: bool = False  # GET /v1/jobs/{id}/files lists per-file records

    def enabled(self) -> list[str]:
        """The names of the assumptions turned on, for the start-up log."""
        return [f.name for f in fields(self) if getattr(self, f.name)]


@dataclass(slots=True)
class EmulatorConfig:
    """How to run one emulator; ``port=0`` picks a free port (see ``EmulatorServer.url``)."""

    host: str = "127.0.0.1"
    port: int = 0
    state_dir: Path | None = None
    token_ttl_s: float = 3600.0
    bandwidth_bps: int = 0  # per transfer; 0 = unlimited
    clients: list[ClientSpec] = field(default_factory=default_clients)
    assume: Assumptions = field(default_factory=Assumptions)
    paused_backlog: PausedBacklog = PausedBacklog.FAIL
    tls_cert: Path | None = None  # serve HTTPS with this certificate chain (PEM) ...
    tls_key: Path | None = None  # ... and its private key
    # Not on the command line: knobs for tests and benchmarks.
    max_objects_per_transfer: int = 500
    max_active_transfers: int = 8
    save_interval_s: float = 0.2
