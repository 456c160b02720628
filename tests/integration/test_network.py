"""The Jet client through TLS with a private CA and through a forwarding proxy: verified
always, the proxy from the config key or HTTPS_PROXY/NO_PROXY, failures said in words."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from jetwatch.apis.jet.client import JetClient
from jetwatch.emulators.jet import EmulatorServer
from jetwatch.errors import TransportError
from tests.fixtures.daemon import free_port
from tests.fixtures.emulator import ADMIN_ID, ADMIN_SECRET
from tests.fixtures.network import ConnectProxy, Pki


def client(server: EmulatorServer, **options: object) -> JetClient:
    return JetClient(
        server.url,
        ADMIN_ID,
        SecretStr(ADMIN_SECRET),
        max_retries=0,
        connect_timeout_s=5,
        **options,  # type: ignore[arg-type]
    )


async def test_private_ca_is_trusted_with_ca_file(https_emulator: EmulatorServer, pki: Pki) -> None:
    """ca_file adds the CA to the system store: the HTTPS API answers."""
    assert https_emulator.url.startswith("https://")
    async with client(https_emulator, ca_file=pki.ca, proxy="direct") as jet:
        assert await jet.list_jobs() == []
        assert jet.network.describe() == (
            f'direct (proxy = "direct"); TLS trusting the system CAs and {pki.ca}'
        )


async def test_unknown_ca_fails_with_the_reason(https_emulator: EmulatorServer) -> None:
    """Without ca_file the handshake fails, and the error says why and what was trusted."""
    async with client(https_emulator, proxy="direct") as jet:
        with pytest.raises(TransportError) as caught:
            await jet.list_jobs()
    message = str(caught.value)
    host = https_emulator.url.removeprefix("https://")
    assert f"TLS handshake with {host} failed" in message
    assert "certificate verify failed" in message
    assert "trusting the system CAs)" in message


async def test_proxy_key_tunnels_through_the_proxy(
    https_emulator: EmulatorServer, pki: Pki, connect_proxy: ConnectProxy
) -> None:
    """proxy = URL: every request goes through a CONNECT tunnel, TLS checked end to end."""
    async with client(https_emulator, ca_file=pki.ca, proxy=connect_proxy.url) as jet:
        assert await jet.list_jobs() == []
        assert jet.network.proxy_source == "the proxy key"
    assert connect_proxy.tunnels == [https_emulator.url.removeprefix("https://")]


async def test_https_proxy_and_no_proxy_from_the_environment(
    https_emulator: EmulatorServer,
    pki: Pki,
    connect_proxy: ConnectProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTPS_PROXY is honoured unless NO_PROXY names the API's host."""
    monkeypatch.setenv("HTTPS_PROXY", connect_proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with client(https_emulator, ca_file=pki.ca) as jet:
        assert await jet.list_jobs() == []
        assert jet.network.proxy_source == "HTTPS_PROXY"
    assert len(connect_proxy.tunnels) == 1
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    async with client(https_emulator, ca_file=pki.ca) as jet:
        assert await jet.list_jobs() == []
        assert jet.network.proxy is None
        assert jet.network.proxy_source == "NO_PROXY names 127.0.0.1"
    assert len(connect_proxy.tunnels) == 1  # not through the proxy this time


async def test_proxy_credentials_are_sent_and_never_shown(
    https_emulator: EmulatorServer, pki: Pki, connect_proxy: ConnectProxy
) -> None:
    """user:password in the proxy URL authenticate the tunnel; the password is masked in
    what check prints, and a refusal (407) is said as such."""
    connect_proxy.credentials = ("ingest", "s3cret-proxy")
    url = connect_proxy.url.replace("http://", "http://ingest:s3cret-proxy@")
    async with client(https_emulator, ca_file=pki.ca, proxy=url) as jet:
        assert await jet.list_jobs() == []
        assert "s3cret-proxy" not in jet.network.describe()
        assert "ingest:***@" in jet.network.describe()
    wrong = connect_proxy.url.replace("http://", "http://ingest:wrong@")
    async with client(https_emulator, ca_file=pki.ca, proxy=wrong) as jet:
        with pytest.raises(TransportError) as caught:
            await jet.list_jobs()
    assert "the proxy refused the tunnel" in str(caught.value)
    assert "407" in str(caught.value)
    assert "wrong" not in str(caught.value)


async def test_unreachable_proxy_is_named(https_emulator: EmulatorServer, pki: Pki) -> None:
    """A proxy that does not answer: the error names the proxy, not the API."""
    proxy = f"http://127.0.0.1:{free_port()}"
    async with client(https_emulator, ca_file=pki.ca, proxy=proxy) as jet:
        with pytest.raises(TransportError) as caught:
            await jet.list_jobs()
    assert f"cannot connect to the proxy {proxy}" in str(caught.value)
