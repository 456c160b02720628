"""Faults injected on request: error answers, latency, dropped connections, failing paths."""

from __future__ import annotations

import fnmatch
import random
from dataclasses import dataclass
from enum import StrEnum

from jetwatch.emulators.jet.model import JsonDict
from jetwatch.emulators.jet.validation import bad_request

RETRY_AFTER_STATUSES = frozenset({429, 503})


class DropPhase(StrEnum):
    """When a dropped request loses its connection (or a slow one waits): before it acts,
    after, or either."""

    BEFORE = "before"
    AFTER = "after"
    RANDOM = "random"


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """The faults in force; the default injects nothing."""

    status_rates: tuple[tuple[int, float], ...] = ()
    latency_ms: float = 0.0
    latency_phase: DropPhase = DropPhase.BEFORE
    drop_rate: float = 0.0
    drop_phase: DropPhase = DropPhase.RANDOM
    fail_paths: tuple[str, ...] = ()
    seed: int | None = None
    methods: tuple[str, ...] = ()  # only requests of these methods (empty: all)

    def to_json(self) -> JsonDict:
        return {
            "status_rates": {str(status): rate for status, rate in self.status_rates},
            "latency_ms": self.latency_ms,
            "latency_phase": self.latency_phase.value,
            "drop_rate": self.drop_rate,
            "drop_phase": self.drop_phase.value,
            "fail_paths": list(self.fail_paths),
            "seed": self.seed,
            "methods": list(self.methods),
        }


def _rate(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise bad_request(f"{what} must be a number between 0 and 1")
    return float(value)


def _status_rates(value: object) -> tuple[tuple[int, float], ...]:
    if not isinstance(value, dict):
        raise bad_request("status_rates must be an object of status -> rate")
    rates: list[tuple[int, float]] = []
    for key, rate in value.items():
        if not str(key).isdigit() or not 400 <= int(key) <= 599:
            raise bad_request(f"status_rates key {key!r} must be an HTTP error status")
        rates.append((int(key), _rate(rate, f"status_rates[{key}]")))
    if sum(rate for _, rate in rates) > 1:
        raise bad_request("status_rates must add up to at most 1")
    return tuple(sorted(rates))


def _fail_paths(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise bad_request("fail_paths must be a list of glob patterns")
    return tuple(value)


def _phase(body: dict[str, object], key: str, default: DropPhase) -> DropPhase:
    try:
        return DropPhase(str(body.get(key, default.value)))
    except ValueError:
        raise bad_request(f"{key} must be before, after or random") from None


def parse_faults(body: object) -> FaultConfig:
    """``POST /_emulator/faults`` body; every key is optional and ``{}`` clears all faults.

    Besides the keys of JET-API.md it takes ``drop_phase`` (before/after/random) and
    ``seed``, so tests can make drops and error answers reproducible,
    ``latency_phase``: "after" delays the answer of a request that already took effect, and
    ``methods`` (e.g. ``["POST"]``): only requests of these methods meet the faults.
    """
    if not isinstance(body, dict):
        raise bad_request("body must be a JSON object")
    known = {
        "status_rates",
        "latency_ms",
        "latency_phase",
        "drop_rate",
        "drop_phase",
        "fail_paths",
        "seed",
        "methods",
    }
    unknown = sorted(set(body) - known)
    if unknown:
        raise bad_request(f"unknown fault keys: {', '.join(unknown)}")
    latency_ms = body.get("latency_ms", 0)
    if isinstance(latency_ms, bool) or not isinstance(latency_ms, int | float) or latency_ms < 0:
        raise bad_request("latency_ms must be a non-negative number")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise bad_request("seed must be an integer")
    return FaultConfig(
        status_rates=_status_rates(body.get("status_rates", {})),
        latency_ms=float(latency_ms),
        latency_phase=_phase(body, "latency_phase", DropPhase.BEFORE),
        drop_rate=_rate(body.get("drop_rate", 0.0), "drop_rate"),
        drop_phase=_phase(body, "drop_phase", DropPhase.RANDOM),
        fail_paths=_fail_paths(body.get("fail_paths", [])),
        seed=seed,
        methods=_methods(body.get("methods", [])),
    )


def _methods(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(m, str) and m for m in value):
        raise bad_request("methods must be a list of HTTP methods")
    return tuple(m.upper() for m in value)


class FaultInjector:
    """Holds the fault config and makes the random draws for each request."""

    def __init__(self) -> None:
        self.config = FaultConfig()
        self._rng = random.Random()

    def configure(self, config: FaultConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)

    def applies_to(self, method: str) -> bool:
        """Whether requests of ``method`` meet the faults."""
        return not self.config.methods or method.upper() in self.config.methods

    def pick_status(self) -> int | None:
        """An error status to answer instead of the real one, or None."""
        draw = self._rng.random()
        for status, rate in self.config.status_rates:
            if draw < rate:
                return status
            draw -= rate
        return None

    def latency_after(self) -> bool:
        """Whether this request's latency comes after it acted (else before)."""
        phase = self.config.latency_phase
        if phase is DropPhase.RANDOM:
            return self._rng.random() < 0.5
        return phase is DropPhase.AFTER

    def pick_drop(self) -> DropPhase | None:
        """BEFORE or AFTER when this request's connection is to be dropped, else None."""
        if self.config.drop_rate <= 0 or self._rng.random() >= self.config.drop_rate:
            return None
        if self.config.drop_phase is not DropPhase.RANDOM:
            return self.config.drop_phase
        return DropPhase.BEFORE if self._rng.random() < 0.5 else DropPhase.AFTER

    def path_fails(self, relative_path: str) -> bool:
        """True when ``relative_path`` matches a ``fail_paths`` pattern."""
        return any(fnmatch.fnmatchcase(relative_path, p) for p in self.config.fail_paths)
