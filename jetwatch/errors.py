"""The one exception tree of jetwatch, and its exit codes; the class of an error says what to do.

::

    JetwatchError
    ├── ConfigError (ValueError)     bad configuration; ``problems`` lists (key, message)
    ├── LedgerError                  the ledger cannot be used
    │   ├── LedgerCorruptError       integrity check failed / not a ledger: refuse to start
    │   └── LedgerUnavailableError   disk full, read-only, locked: pause intake, retry
    │       └── LeaseLostError       this daemon does not hold the folder's lease: act not
    └── ApiError                     anything from talking to a transfer API (any target)
        ├── TransportError           retryable: connect, timeout, 429, 5xx; nothing submitted
        ├── OutcomeUnknownError      a submission was sent, no answer came: resolve, never re-send
        ├── ProtocolError            the answer breaks the contract (bad JSON or shape)
        └── RejectedError            the API said no (4xx other than 429); ``status``, ``body``
            ├── AuthError            401 after a fresh token or login, or credentials refused
            ├── ForbiddenError       403: the role may not do this
            ├── NotFoundError        404: job, job config, delivery or run unknown
            └── PausedError          the destination is paused or inactive: hold the batch

Foreign exceptions (aiohttp, sqlite3, OSError, the JetStream vendor module) are translated
at one boundary each with ``raise ... from exc``; callers never branch on message text.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """How every jetwatch command and the daemon end; documented in README 'Exit codes'."""

    OK = 0
    FAILURE = 1  # runtime failure, a paused target, a forced or overrunning shutdown
    CONFIG = 2  # bad usage or configuration: one line per problem, naming the key
    LEDGER = 3  # the ledger was refused (corrupt, not a ledger, in use)
    NO_DAEMON = 4  # status: the ledger was read, but no daemon answers
    INTERRUPTED = 130  # Ctrl+C of a one-shot command


class JetwatchError(Exception):
    """Root of every error jetwatch raises on purpose."""


class ConfigError(JetwatchError, ValueError):
    """The configuration is invalid; each problem names the key and the fix."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{key}: {msg}" for key, msg in problems))


class LedgerError(JetwatchError):
    """The ledger (SQLite state file) cannot be used."""


class LedgerCorruptError(LedgerError):
    """The ledger fails its integrity check or is not a ledger; never replaced silently."""


class LedgerUnavailableError(LedgerError):
    """The ledger cannot be written right now (disk full, read-only, locked); retry later."""


class LeaseLostError(LedgerUnavailableError):
    """A fenced write found the folder's lease lapsed or held by another daemon; no change."""


class ApiError(JetwatchError):
    """A call to a transfer API failed (Jet, Integration Manager, JetStream)."""


class TransportError(ApiError):
    """Retryable failure: connection, timeout, 429 or 5xx. ``retry_after_s`` from the server."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


class OutcomeUnknownError(ApiError):
    """A non-idempotent request was sent but its outcome is unknown; look before re-sending."""


class ProtocolError(ApiError):
    """The API answered something the contract does not allow (malformed JSON, wrong shape)."""


class RejectedError(ApiError):
    """The API refused the request (4xx other than 429). ``body`` is truncated, never secret."""

    def __init__(self, message: str, *, status: int, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class AuthError(RejectedError):
    """Credentials were refused, or a fresh token was still rejected."""


class ForbiddenError(RejectedError):
    """The client's role may not perform this call (403)."""


class NotFoundError(RejectedError):
    """The job, delivery or transfer does not exist (404)."""


class PausedError(RejectedError):
    """A submission was refused because its destination is paused or inactive."""
