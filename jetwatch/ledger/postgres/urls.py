"""A PostgreSQL URL as people may see it: never with its password (no driver import here)."""

from __future__ import annotations

import urllib.parse


def safe_url(url: str) -> str:
    """The URL without its password, for logs, errors and status."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
