"""The one exception tree of jetwatch; the class of an error says what to do about it.

::

    JetwatchError
    ├── ConfigError (ValueError)     bad configuration; ``problems`` lists (key, message)
    ├── LedgerError                  the ledger cannot be used
    │   ├── LedgerCorruptError       integrity check failed / not a ledger: refuse to start
    │   └── LedgerUnavailableError   disk full, read-only, locked: pause intake, retry
    └── JetError                     anything from talking to an API
        ├── JetTransportError        retryable: connect, timeout, 429, 5xx
        ├── JetOutcomeUnknownError   a POST was sent, no answer came: resolve, never re-POST
        ├── JetProtocolError         the answer breaks the contract (bad JSON or shape)
        └── JetRejectedError         the API said no (4xx other than 429); ``status``, ``body``
            ├── JetAuthError         401 after a fresh token, or credentials refused
            ├── JetForbiddenError    403: the role may not do this
            ├── JetNotFoundError     404: job, delivery or transfer unknown
            └── JetJobPausedError    400 on a delivery POST to a paused job

Foreign exceptions (aiohttp, sqlite3, OSError) are translated at one boundary each with
``raise ... from exc``; callers never branch on message text.
"""

from __future__ import annotations


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


class JetError(JetwatchError):
    """A call to a transfer API failed."""


class JetTransportError(JetError):
    """Retryable failure: connection, timeout, 429 or 5xx. ``retry_after_s`` from the server."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


class JetOutcomeUnknownError(JetError):
    """A non-idempotent request was sent but its outcome is unknown; look before re-sending."""


class JetProtocolError(JetError):
    """The API answered something the contract does not allow (malformed JSON, wrong shape)."""


class JetRejectedError(JetError):
    """The API refused the request (4xx other than 429). ``body`` is truncated, never secret."""

    def __init__(self, message: str, *, status: int, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class JetAuthError(JetRejectedError):
    """Credentials were refused, or a fresh token was still rejected."""


class JetForbiddenError(JetRejectedError):
    """The client's role may not perform this call (403)."""


class JetNotFoundError(JetRejectedError):
    """The job, delivery or transfer does not exist (404)."""


class JetJobPausedError(JetRejectedError):
    """A delivery was refused because the job is paused (400 on POST .../deliveries)."""
