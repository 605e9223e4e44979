"""SSRF guard: refused before any connection, and connections go only to the checked address."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl
from typing import Any

import httpcore
import httpx
import pytest
from fixtures.web.web_servers import LocalServer, html_page, static

from zi_isag_tool.settings import Settings
from zi_isag_tool.web.fetch import Fetcher
from zi_isag_tool.web.guard import (
    BlockedURLError,
    GuardedTransport,
    UrlGuard,
    address_problem,
    parse_numeric_ipv4,
)


class RecordingResolver:
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host not in self.answers:
            raise OSError(f"no such host {host}")
        return self.answers[host]


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """The real socket backend, recording every address it is asked to connect to."""

    def __init__(self) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.connects: list[tuple[str, int]] = []

    async def connect_tcp(self, host: str, port: int, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        return await self.inner.connect_tcp(host, port, **kwargs)

    async def connect_unix_socket(self, path: str, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise AssertionError("no unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


BLOCKED_URLS = [
    "http://127.0.0.1/",
    "http://127.0.0.1:8080/admin",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::127.0.0.1]/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://0.0.0.0/",
    "http://[::]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata.google.internal./",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://[fd00::1]/",
    "http://[2002:7f00:1::]/",  # 6to4 wrapping 127.0.0.1
    "http://[fec0::1]/",  # site-local
    "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
    "http://[64:ff9b:1::a00:1]/",  # local-use NAT64 of 10.0.0.1
    "http://localhost/",
    "http://app.localhost/",
    "http://intranet.public-looking.example/",  # resolves to a private address
    "http://rebind.public-looking.example/",  # one public, one loopback address
    "file:///etc/passwd",
    "gopher://example.com:70/_HELO",
    "ftp://example.com/file",
    "http://user:secret@example.com/",
    "https://user@example.com/",
    "not a url",
]


async def test_default_settings_refuse_without_connecting() -> None:
    resolver = RecordingResolver(
        {
            "intranet.public-looking.example": ["10.20.30.40"],
            "rebind.public-looking.example": ["93.184.216.34", "127.0.0.1"],
        }
    )
    backend = RecordingBackend()
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.allow_private_networks is False
    async with Fetcher(settings, resolver=resolver, transport=GuardedTransport(network_backend=backend)) as f:
        pages = await f.fetch_many(BLOCKED_URLS)
    for url, page in zip(BLOCKED_URLS, pages, strict=True):
        assert page.status == "blocked", (url, page)
        assert page.text is None and page.error and page.error.startswith("blocked:")
    assert backend.connects == []
    # Only the two ordinary names were looked up; literal, numeric and metadata hosts never reach DNS.
    assert sorted(h for h, _ in resolver.calls) == [
        "intranet.public-looking.example",
        "rebind.public-looking.example",
    ]


async def test_refusal_messages_are_precise_and_safe() -> None:
    guard = UrlGuard(resolver=RecordingResolver({"private.example": ["10.1.2.3"]}))
    cases = {
        "http://private.example/": "private.example resolves to a private address (set allow_private_networks",
        "http://[::ffff:127.0.0.1]/": "is a loopback address",
        "http://169.254.169.254/": "cloud metadata address",
        "http://metadata.google.internal/": "cloud metadata host",
        "file:///etc/passwd": "scheme 'file' is not allowed",
        "http://a:b@example.com/": "credentials",
        "http://0x7f.1/": "0x7f.1 (127.0.0.1) is a loopback address",
    }
    for url, expected in cases.items():
        with pytest.raises(BlockedURLError) as info:
            await guard.check(url)
        assert expected in str(info.value), (url, str(info.value))
        assert "10.1.2.3" not in str(info.value)  # internal DNS answers are not echoed


def test_numeric_ipv4_spellings() -> None:
    assert parse_numeric_ipv4("2130706433") == ipaddress.IPv4Address("127.0.0.1")
    assert parse_numeric_ipv4("0x7f.1") == ipaddress.IPv4Address("127.0.0.1")
    assert parse_numeric_ipv4("0177.0.0.01") == ipaddress.IPv4Address("127.0.0.1")
    assert parse_numeric_ipv4("10.1") == ipaddress.IPv4Address("10.0.0.1")
    assert parse_numeric_ipv4("example.com") is None
    assert parse_numeric_ipv4("1.example") is None
    for bad in ("4294967296", "1.2.3.4.5", "256.1.1.1", "09.1.1.1"):
        with pytest.raises(BlockedURLError):
            parse_numeric_ipv4(bad)


def test_address_classes() -> None:
    def problem(a: str, allow: bool = False) -> str | None:
        return address_problem(ipaddress.ip_address(a), allow_private=allow)

    assert problem("93.184.216.34") is None
    assert problem("2606:2800:220:1:248:1893:25c8:1946") is None
    assert problem("100.64.1.1") == "a carrier-grade NAT address"
    assert problem("::ffff:93.184.216.34") == "an IPv4-mapped IPv6 address"  # mapped forms always refused
    # Deprecated site-local IPv6 is private; NAT64 addresses are judged by the IPv4 inside.
    assert problem("fec0::1") == "a site-local address" and problem("fec0::1", True) is None
    assert problem("64:ff9b::a00:1") == "a private address behind a NAT64 prefix"  # 10.0.0.1
    assert problem("64:ff9b::7f00:1") == "a loopback address behind a NAT64 prefix"
    assert problem("64:ff9b::a9fe:a9fe", True) == "a cloud metadata address behind a NAT64 prefix"
    assert problem("64:ff9b::5db8:d822") is None  # 93.184.216.34
    # Local-use prefix: every RFC 6052 layout is read; any non-public reading refuses it.
    assert problem("64:ff9b:1::5db8:d822") is None  # /96 layout, 93.184.216.34
    assert problem("64:ff9b:1::7f00:1") == "a loopback address behind a NAT64 prefix"  # /96: 127.0.0.1
    assert problem("64:ff9b:1:7f00:0:100::") == "a loopback address behind a NAT64 prefix"  # /48 layout
    assert problem("64:ff9b:1:0:a:0::") == "a private address behind a NAT64 prefix"  # /64 layout
    assert problem("64:ff9b:1::7f00:1", True) is None
    # allow_private lets loopback and private through, never metadata, unspecified or multicast.
    assert problem("127.0.0.1", True) is None and problem("10.0.0.1", True) is None
    assert problem("169.254.169.254", True) == "a cloud metadata address"
    assert problem("0.0.0.0", True) == "an unspecified address"
    assert problem("ff02::1", True) == "a multicast address"


async def test_transport_refuses_hosts_the_guard_did_not_check() -> None:
    page = html_page("Hi", "hello")
    with LocalServer({"/": static(page.encode(), "text/html")}) as server:
        async with httpx.AsyncClient(transport=GuardedTransport()) as client:
            with pytest.raises(httpx.ConnectError, match="not checked by the URL guard"):
                await client.get(server.url("/"))
        assert server.requests == []


async def test_allow_private_reaches_loopback_through_pinned_address() -> None:
    """A made-up name resolved by the hook: only the checked address is dialled, DNS is asked once."""
    page = html_page("Pinned", "The connection went to the checked address.")
    resolver = RecordingResolver({"public.test": ["127.0.0.1"]})
    backend = RecordingBackend()
    settings = Settings(_env_file=None, allow_private_networks=True)  # type: ignore[call-arg]
    with LocalServer({"/p": static(page.encode(), "text/html; charset=utf-8")}) as server:
        transport = GuardedTransport(network_backend=backend)
        async with Fetcher(settings, resolver=resolver, transport=transport) as fetcher:
            result = await fetcher.fetch(server.url("/p", host="public.test"))
        assert result.status == "ok", result
        assert "checked address" in (result.text or "")
        assert backend.connects == [("127.0.0.1", server.port)]
        assert resolver.calls == [("public.test", server.port)]
        assert server.requests[0][2]["Host"] == f"public.test:{server.port}"


def _make_tls(hostname: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throwaway CA and a certificate for ``hostname``: (server context, client context)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zi-isag test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = f"{tmp}/cert.pem", f"{tmp}/key.pem"
        with open(cert_path, "wb") as fh:
            fh.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as fh:
            fh.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(cert_path, key_path)
    client_ctx = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server_ctx, client_ctx


async def test_https_connects_to_checked_ip_with_sni_and_certificate_of_the_name() -> None:
    server_ctx, client_ctx = _make_tls("secure.test")
    seen_sni: list[str | None] = []
    server_ctx.sni_callback = lambda sock, name, ctx: seen_sni.append(name)  # type: ignore[assignment]
    page = html_page("TLS", "Served over TLS to the checked address.")
    resolver = RecordingResolver({"secure.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    settings = Settings(_env_file=None, allow_private_networks=True)  # type: ignore[call-arg]
    with LocalServer(
        {"/s": static(page.encode(), "text/html; charset=utf-8")}, ssl_context=server_ctx
    ) as server:
        transport = GuardedTransport(verify=client_ctx)
        async with Fetcher(settings, resolver=resolver, transport=transport) as fetcher:
            ok = await fetcher.fetch(server.url("/s", host="secure.test", scheme="https"))
            wrong_name = await fetcher.fetch(server.url("/s", host="other.test", scheme="https"))
    assert ok.status == "ok", ok
    assert "Served over TLS" in (ok.text or "")
    assert "secure.test" in seen_sni
    assert server.requests[0][2]["Host"] == f"secure.test:{server.port}"
    # Same IP, but the certificate is checked against the name in the URL.
    assert wrong_name.status == "error" and wrong_name.text is None


async def test_custom_transport_or_proxy_loses_pinning_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    caplog.set_level(logging.WARNING, logger="zi_isag_tool.web.fetch")
    async with Fetcher(settings, transport=GuardedTransport(network_backend=RecordingBackend())) as fetcher:
        assert fetcher.pinned
    assert not caplog.records
    async with Fetcher(settings, transport=httpx.AsyncHTTPTransport()) as fetcher:
        assert not fetcher.pinned
    assert "not pinned to the checked addresses" in caplog.text
    caplog.clear()
    proxied = Settings(_env_file=None, fetch_proxy="http://user:pw@proxy.internal:3128")  # type: ignore[call-arg]
    async with Fetcher(proxied) as fetcher:
        assert not fetcher.pinned
    assert "proxy http://proxy.internal:3128" in caplog.text and "pw" not in caplog.text
    with pytest.raises(ValueError, match="http:// or https://"):
        Settings(_env_file=None, fetch_proxy="socks5://proxy:1080")  # type: ignore[call-arg]


async def test_fetch_through_explicit_proxy_still_guarded() -> None:
    """A forward proxy on 127.0.0.1 (trusted, the operator's); the pages are public names."""
    page = html_page("Proxied", "This page came through the proxy.")
    resolver = RecordingResolver({"public.test": ["93.184.216.34"], "intranet.test": ["10.0.0.7"]})
    with LocalServer({}) as proxy:
        proxy.routes["http://public.test/p"] = static(page.encode(), "text/html; charset=utf-8")
        settings = Settings(_env_file=None, fetch_proxy=proxy.url(""))  # type: ignore[call-arg]
        async with Fetcher(settings, resolver=resolver) as fetcher:
            ok, refused = await fetcher.fetch_many(["http://public.test/p", "http://intranet.test/p"])
    assert ok.status == "ok" and "came through the proxy" in (ok.text or "")
    assert refused.status == "blocked" and "private address" in (refused.error or "")
    assert [path for _, path, _ in proxy.requests] == ["http://public.test/p"]  # the refused URL never left
