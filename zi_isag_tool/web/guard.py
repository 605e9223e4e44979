"""SSRF guard: decide whether a URL may be fetched, and make the connection go to the checked address.

``UrlGuard.check`` parses the URL, refuses non-http(s) schemes, credentials, cloud-metadata names and
numeric host spellings of private addresses, resolves the host once, and refuses the URL when any
address is not public. The checked addresses are then *pinned* for the current task
(``pinned_addresses``); ``GuardedTransport`` connects only to pinned addresses, so the name is never
looked up a second time (no DNS rebinding between check and connect). The URL, the ``Host`` header and
the TLS SNI/certificate check keep the original name.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import ipaddress
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

logger = logging.getLogger(__name__)

Resolver = Callable[[str, int], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = ("http", "https")

# Names that reach cloud instance metadata services; refused even when private networks are allowed.
METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
        "metadata.tencentyun.com",
    }
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "169.254.169.253", "100.100.100.200", "fd00:ec2::254")
)

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # deprecated (RFC 3879), still routed inside some sites
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix: IPv4 in the last 32 bits
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215 local-use: the operator picks the layout
# RFC 6052 layouts inside a /48 (prefix lengths 48, 56, 64, 96): (bit offset, bit count) of the IPv4
# pieces, counted from the address's first bit; bits 64-71 are never used.
_NAT64_LAYOUTS = (
    ((48, 16), (72, 16)),
    ((56, 8), (72, 24)),
    ((72, 32),),
    ((96, 32),),
)


class BlockedURLError(Exception):
    """The URL may not be fetched; the message is short and safe to show to anyone."""


class UnresolvableHostError(OSError):
    """DNS gave no address: a fetch error, not a guard refusal."""


@dataclass(frozen=True, slots=True)
class CheckedTarget:
    """A URL that passed the guard, with the addresses it may be connected to."""

    url: httpx.URL
    host: str
    port: int
    addresses: tuple[str, ...]


def parse_numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """Read the IPv4 spellings that resolvers accept (``2130706433``, ``0x7f.1``, ``0177.0.0.1``).

    Follows the WHATWG URL host parser: a host whose last label is numeric is an IPv4 address.
    Returns None for ordinary names; raises ``BlockedURLError`` for a numeric host that is not valid.
    """
    labels = host.split(".")
    if labels and labels[-1] == "":
        labels = labels[:-1]
    if not labels or not _is_numeric_label(labels[-1]):
        return None
    if len(labels) > 4 or not all(_is_numeric_label(x) for x in labels):
        raise BlockedURLError("blocked: invalid numeric host")
    numbers = [_parse_number(x) for x in labels]
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        raise BlockedURLError("blocked: invalid numeric host")
    value = last
    for i, n in enumerate(head):
        value += n * 256 ** (3 - i)
    return ipaddress.IPv4Address(value)


def _is_numeric_label(label: str) -> bool:
    low = label.lower()
    if low.startswith("0x"):
        return all(c in "0123456789abcdef" for c in low[2:])
    return low.isdigit() and low.isascii()


def _parse_number(label: str) -> int:
    low = label.lower()
    if low.startswith("0x"):
        return int(low[2:] or "0", 16)
    if len(low) > 1 and low.startswith("0"):
        if any(c in "89" for c in low):
            raise BlockedURLError("blocked: invalid numeric host")
        return int(low, 8)
    return int(low)


def address_problem(ip: IPAddress, *, allow_private: bool) -> str | None:
    """Why ``ip`` may not be connected to, or None when it may."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv6Address):
        nat64 = _nat64_ipv4(ip)
        if nat64:
            # A translator forwards to the IPv4 inside: that address decides (every possible layout).
            for inner_ip in nat64:
                inner = address_problem(inner_ip, allow_private=allow_private)
                if inner:
                    return f"{inner} behind a NAT64 prefix"
            return None
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            # Mapped/compatible forms reach IPv4 hosts through the v6 stack; never allow them to hide one.
            inner = address_problem(embedded, allow_private=allow_private)
            if ip.ipv4_mapped is not None or int(ip) >> 32 == 0:
                return inner or "an IPv4-mapped IPv6 address"
            if inner:
                return inner
    if allow_private:
        return None
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if isinstance(ip, ipaddress.IPv6Address) and ip in _SITE_LOCAL:
        return "a site-local address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "a carrier-grade NAT address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved or not ip.is_global:
        return "a reserved address"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    value = int(ip)
    if value >> 32 == 0 and value > 1:  # ::a.b.c.d (deprecated IPv4-compatible); :: and ::1 handled apart
        return ipaddress.IPv4Address(value)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def _nat64_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 address(es) a NAT64 address may stand for; empty when it is not one.

    Under the local-use prefix the translator's layout is the operator's choice, so every RFC 6052
    reading counts, and the address is refused when any of them is not public."""
    value = int(ip)
    if ip in _NAT64:
        return (ipaddress.IPv4Address(value & 0xFFFFFFFF),)
    if ip not in _NAT64_LOCAL:
        return ()
    u_octet = (value >> 56) & 0xFF
    candidates: list[ipaddress.IPv4Address] = []
    for layout in _NAT64_LAYOUTS:
        if layout[-1][0] < 96 and u_octet:
            continue  # RFC 6052: bits 64-71 are zero in every layout but /96
        v4 = 0
        for offset, bits in layout:
            v4 = (v4 << bits) | ((value >> (128 - offset - bits)) & ((1 << bits) - 1))
        if v4 >> 24:  # 0.0.0.0/8 is no translator's target: that layout is not the one in use
            candidates.append(ipaddress.IPv4Address(v4))
    return tuple(dict.fromkeys(candidates))


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the system resolver (run off the event loop by asyncio)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


class UrlGuard:
    """Checks URLs before any connection; see the module docstring."""

    def __init__(self, *, allow_private: bool = False, resolver: Resolver | None = None) -> None:
        self.allow_private = allow_private
        self._resolver = resolver or system_resolver

    async def check(self, url: str | httpx.URL) -> CheckedTarget:
        """Return the target with the addresses to connect to, or raise ``BlockedURLError``."""
        try:
            parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise BlockedURLError("blocked: not a valid URL") from exc
        scheme = parsed.scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            raise BlockedURLError(
                f"blocked: scheme {scheme or '(none)'!r} is not allowed; only http and https"
            )
        if parsed.userinfo:
            raise BlockedURLError("blocked: URLs with credentials (user:password@) are not allowed")
        # The ASCII (IDNA) form is what the connection pool sees, so pins are keyed by it.
        host = parsed.raw_host.decode("ascii").lower().rstrip(".")
        if not host:
            raise BlockedURLError("blocked: URL has no host")
        port = parsed.port or (443 if scheme == "https" else 80)
        if host in METADATA_HOSTS:
            raise BlockedURLError(f"blocked: {host} is a cloud metadata host")
        if not self.allow_private and (host == "localhost" or host.endswith(".localhost")):
            raise BlockedURLError(
                "blocked: localhost is not allowed (set allow_private_networks to allow it)"
            )

        literal = _literal_address(host)
        if literal is not None:
            addresses: Sequence[str] = [str(literal)]
        else:
            try:
                addresses = await self._resolver(host, port)
            except (OSError, UnicodeError) as exc:
                raise UnresolvableHostError(f"could not resolve host {host}") from exc
            if not addresses:
                raise UnresolvableHostError(f"could not resolve host {host}")

        for address in addresses:
            try:
                ip = ipaddress.ip_address(address.split("%", 1)[0])
            except ValueError as exc:
                raise BlockedURLError("blocked: resolver returned an invalid address") from exc
            problem = address_problem(ip, allow_private=self.allow_private)
            if problem is not None:
                fixable = address_problem(ip, allow_private=True) is None
                hint = " (set allow_private_networks to allow it)" if fixable else ""
                if literal is None:
                    subject = f"{host} resolves to"
                elif str(literal) != host:
                    subject = f"{host} ({literal}) is"
                else:
                    subject = f"{host} is"
                raise BlockedURLError(f"blocked: {subject} {problem}{hint}")
        return CheckedTarget(url=parsed, host=host, port=port, addresses=tuple(addresses))


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return parse_numeric_ipv4(host)


# --- pinning: the transport connects only to what the guard checked, in this task -------------------

_pins: contextvars.ContextVar[Mapping[tuple[str, int], tuple[str, ...]] | None] = contextvars.ContextVar(
    "zi_isag_pins", default=None
)


@contextlib.contextmanager
def pinned_addresses(target: CheckedTarget) -> Iterator[None]:
    """Within this block (and this task), connections to ``target`` go to its checked addresses only."""
    pins = dict(_pins.get() or {})
    pins[(target.host, target.port)] = target.addresses
    token = _pins.set(pins)
    try:
        yield
    finally:
        _pins.reset(token)


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Connects to the pinned, checked addresses of a host instead of resolving its name again."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = (_pins.get() or {}).get((host.lower().rstrip("."), port))
        if not addresses:
            raise httpcore.ConnectError(f"refused: {host}:{port} was not checked by the URL guard")
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("refused: unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes tens of milliseconds; one verifying context serves every fetcher.
    return httpx.create_ssl_context(verify=True, trust_env=False)


def unpinned_transport(proxy: str, *, limits: httpx.Limits | None = None) -> httpx.AsyncHTTPTransport:
    """An httpx transport that sends every request through ``proxy`` (an ``http://`` or ``https://``
    proxy URL). The proxy resolves and connects by itself, so nothing here can pin addresses."""
    return httpx.AsyncHTTPTransport(
        proxy=proxy, verify=_default_ssl_context(), trust_env=False, limits=limits or httpx.Limits()
    )


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx`` transport whose connections go only to addresses pinned by ``pinned_addresses``.

    Never uses proxies or the environment. ``verify`` is passed to httpx (tests give a CA here).
    """

    def __init__(
        self,
        *,
        verify: Any = True,
        limits: httpx.Limits | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        ssl_context = _default_ssl_context() if verify is True else httpx.create_ssl_context(verify=verify)
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        # httpx has no public hook for a network backend: replace the pool it built with one that
        # connects through the guard (same limits; h11 only).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=GuardedNetworkBackend(network_backend),
        )
