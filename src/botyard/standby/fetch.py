"""Downloading a task's script: https only, public addresses only, bounded in size and time.

The address check runs where the connection is made (a network backend for httpcore), on the
very addresses the socket connects to, so a name that resolves to a public address when the
task is checked and to ``127.0.0.1`` a moment later (DNS rebinding) is still refused. TLS is
verified against the host name in the URL; redirects are not followed.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpcore

from botyard.errors import DownloadFailed, UnsafeUrl

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# IPv6 ranges that carry an IPv4 address or are deprecated, which ``is_global`` lets through.
_TUNNELS = tuple(
    ipaddress.ip_network(n)
    for n in ("64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "::/96", "fec0::/10")
)


def is_public(address: IpAddress) -> bool:
    """Routable on the internet: not loopback, private, link-local, shared, reserved, multicast.

    NAT64, 6to4, IPv4-compatible and site-local IPv6 addresses count as not public: they can
    lead to an IPv4 address inside the network.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif any(address in net for net in _TUNNELS):
            return False
    return address.is_global and not address.is_multicast


def safe_url(url: str) -> str:
    """``url`` without its query string and credentials, for logs and error messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def resolve(host: str, port: int) -> list[IpAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeUrl(f"cannot resolve {host!r}: {exc.strerror}") from exc
    found: list[IpAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


def allowed_addresses(host: str, port: int, *, allow_private: bool) -> list[IpAddress]:
    """The addresses of ``host``; all of them must be public unless ``allow_private``."""
    addresses = resolve(host, port)
    if not allow_private:
        refused = [str(a) for a in addresses if not is_public(a)]
        if refused:
            raise UnsafeUrl(
                f"{host} resolves to a non-public address ({', '.join(refused)}); "
                "set STANDBY_ALLOW_PRIVATE_URLS to allow it"
            )
    return addresses


def check_url(url: str, *, allow_private: bool) -> tuple[str, int]:
    """Refuse anything but an https URL of a public host; returns (host, port)."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise UnsafeUrl("script_url must be an https:// URL")
    if not parts.hostname:
        raise UnsafeUrl("script_url has no host")
    if parts.username or parts.password:
        raise UnsafeUrl("script_url must not carry credentials")
    try:
        port = parts.port or 443
    except ValueError as exc:
        raise UnsafeUrl(f"script_url has an invalid port: {exc}") from None
    allowed_addresses(parts.hostname, port, allow_private=allow_private)
    return parts.hostname, port


class _GuardedBackend(httpcore.SyncBackend):
    """Connects only to addresses the policy allows, resolved here, once per connection."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = allowed_addresses(host, port, allow_private=self.allow_private)
        last: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                last = exc
        raise httpcore.ConnectError(f"cannot connect to {host}:{port}: {last}")


def fetch(
    url: str,
    *,
    max_bytes: int,
    timeout: float,
    allow_private: bool = False,
    ca_bundle: Path | None = None,
) -> bytes:
    """The body at ``url``; raises ``UnsafeUrl`` or ``DownloadFailed``."""
    check_url(url, allow_private=allow_private)
    shown = safe_url(url)
    deadline = time.monotonic() + timeout  # for the whole download, not only each read
    context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    limits = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
    with httpcore.ConnectionPool(
        ssl_context=context, network_backend=_GuardedBackend(allow_private=allow_private)
    ) as pool:
        try:
            with pool.stream("GET", url, extensions={"timeout": limits}) as response:
                if response.status != 200:
                    raise DownloadFailed(f"GET {shown} answered HTTP {response.status}")
                body = bytearray()
                for chunk in response.iter_stream():
                    body += chunk
                    if len(body) > max_bytes:
                        raise DownloadFailed(f"the script is larger than {max_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise httpcore.ReadTimeout("the download took too long")
                return bytes(body)
        except httpcore.TimeoutException as exc:
            raise DownloadFailed(f"GET {shown} timed out after {timeout:g} s") from exc
        except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
            raise DownloadFailed(f"GET {shown} failed: {exc}") from exc
