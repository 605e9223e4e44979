"""HTTP transport protection: Host/Origin validation and an optional static bearer token.

Both go through the SDK's own machinery (``TransportSecuritySettings`` and the ``TokenVerifier``
protocol behind its bearer-auth middleware), so a missing or wrong token gets a standard 401 with a
``WWW-Authenticate`` header and a foreign ``Origin`` a 403, before any tool runs.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings

_LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")
_WILDCARD_BINDS = ("0.0.0.0", "::", "")


class StaticTokenVerifier:
    """Accepts exactly one bearer token, compared in constant time."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the bearer token must not be empty")
        self._token = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        if hmac.compare_digest(token.encode(), self._token):
            # The value is kept out of AccessToken: the SDK stores it in request state.
            return AccessToken(token="static", client_id="zi-isag-operator", scopes=[])
        return None


def auth_settings(host: str, port: int) -> AuthSettings:
    """The SDK's auth settings for a resource server that checks a static token itself.

    ``issuer_url`` is required by the SDK but unused here: no OAuth routes are served, and no
    ``resource_server_url`` is set, so the token is not matched against an audience.
    """
    return AuthSettings(issuer_url=f"http://{_url_host(host)}:{port}", resource_server_url=None)


def transport_security(host: str, port: int, extra_hosts: Sequence[str] = ()) -> TransportSecuritySettings:
    """Host/Origin validation, always on: loopback names, the bound host and the operator's extras.

    A browser page on another origin (DNS rebinding, a malicious site) is refused even though the
    server listens on localhost.
    """
    names = list(_LOCAL_NAMES)
    if host not in _WILDCARD_BINDS:
        names.append(_url_host(host))
    names.extend(_url_host(h) for h in extra_hosts)
    hosts: list[str] = []
    origins: list[str] = []
    for name in dict.fromkeys(names):
        hosts += [name, f"{name}:{port}"]
        origins += [f"http://{name}:{port}", f"https://{name}:{port}", f"http://{name}", f"https://{name}"]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


def _url_host(host: str) -> str:
    """``::1`` -> ``[::1]``: the spelling used in Host headers and URLs."""
    host = host.strip()
    try:
        if isinstance(ipaddress.ip_address(host.strip("[]")), ipaddress.IPv6Address):
            return f"[{host.strip('[]')}]"
    except ValueError:
        pass
    return host
