"""``jetwatch ledger copy --to URL``: the SQLite ledger's memory moved into PostgreSQL.

The source is the configuration's ``[ledger] path``; the target an empty PostgreSQL
database (created and migrated here). Afterwards point ``[ledger] url`` at it and remove
``path``: the daemons then know every file the old ledger knew, so nothing is sent again.
"""

from __future__ import annotations

import sys
from pathlib import Path

from jetwatch.app.daemon_client import daemon_view
from jetwatch.config.secrets import read_secret_file
from jetwatch.config.settings import Settings, postgres_url
from jetwatch.errors import ConfigError, ExitCode, LedgerError
from jetwatch.ledger.postgres.urls import safe_url


async def copy_command(settings: Settings, to: str, password_file: Path | None) -> ExitCode:
    """Copy; one line and exit 2 (bad usage) or 3 (ledger refused or unreachable) on failure."""
    source = settings.ledger.path
    try:
        if not to:
            raise ConfigError([("--to", "required: the PostgreSQL URL to copy into")])
        postgres_url(to)
        password = read_secret_file(password_file, "--password-file") if password_file else None
    except ValueError as exc:  # ConfigError is one too
        problems = exc.problems if isinstance(exc, ConfigError) else [("--to", str(exc))]
        for key, message in problems:
            print(f"jetwatch ledger copy: {key}: {message}", file=sys.stderr)
        return ExitCode.CONFIG
    if settings.ledger.shared or not source.is_file():
        print(f"jetwatch ledger copy: no SQLite ledger at {source} to copy", file=sys.stderr)
        return ExitCode.CONFIG
    daemon = daemon_view(settings.http.listen)
    if daemon["reachable"]:
        # It would go on writing into the SQLite ledger, and the copy would miss that.
        print(f"the daemon answers at {daemon['url']}: stop it first", file=sys.stderr)
        return ExitCode.FAILURE
    from jetwatch.ledger.postgres.importer import copy_sqlite  # psycopg: only when used
    from jetwatch.ledger.postgres.ledger import PostgresLedger

    try:
        secret = password.get_secret_value() if password is not None else None
        async with await PostgresLedger.open(to, secret) as target:
            report = await copy_sqlite(source, target)
    except LedgerError as exc:
        print(f"jetwatch ledger copy: {exc}", file=sys.stderr)
        return ExitCode.LEDGER
    print(
        f"copied {report.files} files, {report.batches} batches and {report.folders} folders "
        f"from {source} to {safe_url(to)}; now set [ledger] url to it (and remove path)"
    )
    return ExitCode.OK
