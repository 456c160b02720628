"""How a client reaches its API: through which proxy, trusting which CAs, and in words why
a connection or a TLS handshake failed.

Ingest hosts often reach the internet only through a proxy, often one that inspects TLS
with the site's own CA. The proxy is the section's ``proxy`` key (a URL, or ``"direct"``),
else the standard variables (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``, lower case too)
unless ``NO_PROXY`` names the host. Certificates are always verified: against the
system's store, plus the section's ``ca_file``; there is no way to turn that off.
"""

from __future__ import annotations

import os
import ssl
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from yarl import URL

DIRECT = "direct"  # the proxy key's value for "never a proxy, whatever the environment says"


@dataclass(frozen=True, slots=True)
class Network:
    """The route of one client's requests; ``describe`` says it for ``check --online``."""

    proxy: str | None
    proxy_source: str  # why this proxy (or none): "proxy key", "HTTPS_PROXY", "NO_PROXY", ...
    ca_file: Path | None
    tls: ssl.SSLContext | None  # None for an http:// API

    def describe(self) -> str:
        """``via proxy http://p:3128 (from HTTPS_PROXY); TLS trusting the system CAs``."""
        if self.proxy is None:
            route = f"direct ({self.proxy_source})"
        else:
            route = f"via proxy {safe_url(self.proxy)} (from {self.proxy_source})"
        if self.tls is None:
            return f"{route}; plain http, no TLS"
        return f"{route}; TLS trusting {self.trusted()}"

    def trusted(self) -> str:
        extra = f" and {self.ca_file}" if self.ca_file is not None else ""
        return f"the system CAs{extra}"


def safe_url(url: str) -> str:
    """A proxy URL fit for logs: any password masked."""
    parsed = URL(url)
    return str(parsed.with_password("***")) if parsed.password else url


def choose_proxy(
    base: URL, configured: str, env: Mapping[str, str] | None = None
) -> tuple[str | None, str]:
    """The proxy for requests to ``base`` and where that choice came from (pure)."""
    if configured == DIRECT:
        return None, 'proxy = "direct"'
    if configured:
        return configured, "the proxy key"
    environ = os.environ if env is None else env
    names = ("HTTPS_PROXY", "ALL_PROXY") if base.scheme == "https" else ("HTTP_PROXY", "ALL_PROXY")
    for name in names:
        value = environ.get(name) or environ.get(name.lower())
        if value:
            no_proxy = environ.get("NO_PROXY") or environ.get("no_proxy") or ""
            host = base.host or ""
            bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
            if no_proxy and bypass(host, {"no": no_proxy}):
                return None, f"NO_PROXY names {host}"
            return value, name
    return None, "no proxy set"


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """The system store plus ``ca_file``; verification and host names always checked.

    Raises ValueError (for a config error naming the key) when the file cannot be used.
    """
    context = ssl.create_default_context()
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load CA certificates from {ca_file}: {exc}") from exc
    return context


def network_for(base: URL, proxy: str, ca_file: Path | None) -> Network:
    """The Network of a client of ``base`` with the section's ``proxy`` and ``ca_file``."""
    chosen, source = choose_proxy(base, proxy)
    tls = tls_context(ca_file) if base.scheme == "https" else None
    return Network(chosen, source, ca_file, tls)


def failure_text(exc: BaseException | None, network: Network, host: str) -> str:
    """What a transport failure was, in words: TLS refused and why, proxy unreachable, ..."""
    name = type(exc).__name__
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert_error = exc.certificate_error
        why = getattr(cert_error, "verify_message", None) or str(cert_error)
        return (
            f"{name}: TLS handshake with {host} failed: certificate verify failed: {why} "
            f"(trusting {network.trusted()})"
        )
    if isinstance(exc, aiohttp.ClientConnectorSSLError | aiohttp.ClientSSLError):
        return f"{name}: TLS handshake with {host} failed: {exc} (trusting {network.trusted()})"
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        assert network.proxy is not None
        return f"{name}: cannot connect to the proxy {safe_url(network.proxy)}"
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return f"{name}: the proxy refused the tunnel to {host} ({exc.status} {exc.message})"
    # aiohttp's own words name the host and port ("Cannot connect to host ..."); a timeout
    # has none.
    return str(exc) or f"no answer in time ({name})"
