"""SSRF guard: which addresses a download may reach, and a transport that connects only there."""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx

from scenery.errors import SceneryError

log = logging.getLogger(__name__)

Resolver = Callable[[str, int], list[str]]
"""``resolve(host, port) -> addresses``; raises ``socket.gaierror`` when the name is unknown."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Well-known NAT64 prefix (RFC 6052): the last 32 bits are an IPv4 address a gateway will reach.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class BlockedAddress(SceneryError):
    """A host is, or resolves to, an address downloads must not reach."""

    def __init__(self, host: str, address: str) -> None:
        shown = host if host == address else f"{host} ({address})"
        super().__init__(f"refusing non-public address {shown}")
        self.host = host
        self.address = address


def system_resolve(host: str, port: int) -> list[str]:
    """Resolve ``host`` with getaddrinfo; return each distinct address once, in its order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (6to4, NAT64), if any."""
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(address: str) -> bool:
    """Tell whether ``address`` (an IP literal) is globally routable and safe to download from."""
    try:
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.teredo is not None:  # the client address inside is obfuscated; refuse outright
            return False
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d on a dual-stack socket
            return is_public_address(str(ip.ipv4_mapped))
        inner = embedded_ipv4(ip)
        if inner is not None and not is_public_address(str(inner)):
            return False
        if ip.is_site_local:  # deprecated fec0::/10, which Python 3.11 calls global
            return False
    # ``is_global`` alone is not enough on Python 3.11: it calls multicast and some reserved
    # ranges global, so every category is refused explicitly as well.
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def literal_ip(host: str) -> str | None:
    """The host as a normalised IP address string if it is an IP literal, else None."""
    try:
        return str(ipaddress.ip_address(host.strip("[]").split("%", 1)[0]))
    except ValueError:
        return None


def checked_addresses(host: str, port: int, resolve: Resolver, allow_private: bool) -> list[str]:
    """Resolve ``host`` and return its addresses, refusing all if any one is not public."""
    literal = literal_ip(host)
    addresses = [literal] if literal is not None else resolve(host, port)
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, f"{host} resolved to no address")
    if not allow_private:
        # Every address is checked, not just the first: a name with one public and one private
        # address would otherwise let the connection fall through to the private one.
        for address in addresses:
            if not is_public_address(address):
                raise BlockedAddress(host, address)
    return addresses


class GuardedBackend(httpcore.SyncBackend):
    """A network backend that resolves and checks each host itself, then connects to those IPs.

    Checking the name and connecting in one step closes the DNS-rebinding window that a
    separate check-then-connect leaves open (the name cannot change between the two).
    """

    def __init__(self, resolve: Resolver, allow_private: bool) -> None:
        self._resolve = resolve
        self._allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        """Connect to the first reachable checked address of ``host``."""
        # BlockedAddress and socket.gaierror pass through httpx unmapped, for the caller to
        # tell "refused" and "no such host" apart from other connection failures.
        addresses = checked_addresses(host, port, self._resolve, self._allow_private)
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                log.debug("connect to %s (%s) failed: %s", host, address, exc)
                failure = exc
        assert failure is not None  # addresses is never empty
        raise failure


class GuardedTransport(httpx.HTTPTransport):
    """httpx's HTTP transport, with connections pinned to addresses the guard approved.

    Env proxies are ignored on purpose: a proxy would make the connection, not us.
    TLS still verifies the certificate against the URL's host name (httpcore sends it as SNI).
    """

    def __init__(self, resolve: Resolver, allow_private: bool, limits: httpx.Limits) -> None:
        super().__init__(trust_env=False, limits=limits)
        # httpx offers no public hook for the network backend, so rebuild its pool with ours.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(resolve, allow_private),
        )
