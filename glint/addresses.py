"""Which IP addresses an import may reach, and the host patterns of the allow and deny lists.

By default an import (or an export to an http(s) URL) may connect only to *global unicast*
addresses: never to loopback, private (RFC 1918, IPv6 unique-local), link-local, shared
(CGNAT, 100.64.0.0/10), multicast, unspecified, reserved or documentation ranges, nor to the
instance-metadata addresses of cloud platforms (169.254.169.254, fd00:ec2::254 and friends).
An IPv6 address that carries an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible
``::a.b.c.d``, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``) is judged by the IPv4 address too,
since that is where the packets end up.

:func:`refusal` says why an address is refused; :class:`HostPattern` is one entry of
``import_allowed_hosts`` / ``import_disallowed_hosts``: a host name, an address or a network
(CIDR), with an optional port.
"""

from __future__ import annotations

import dataclasses
import ipaddress

from glint import digits

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Instance-metadata services (AWS, GCP, Azure, OpenStack, Alibaba, Oracle, ECS task metadata):
# named in refusals, and refused even if a platform made one of them routable.
METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "fd00:ec2::254", "fd00:ec2::23", "100.100.100.200",
    "192.0.0.192"))
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def parse(text: str) -> Address:
    """An address as ``getaddrinfo`` returns it (a ``%scope`` suffix is dropped), IPv4-mapped
    and IPv4-compatible IPv6 addresses as the IPv4 address they stand for."""
    address = ipaddress.ip_address(text.split("%", 1)[0])
    embedded = _carried_ipv4(address, mapped_only=True)
    return embedded if embedded is not None else address


def refusal(address: Address) -> str | None:
    """Why an import may not connect to ``address`` ("a loopback address"), or None."""
    embedded = _carried_ipv4(address)
    if embedded is not None:
        reason = refusal(embedded)
        if reason is not None:
            return f"{reason} carried in an IPv6 address"
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return None
    return _own_refusal(address)


def _own_refusal(address: Address) -> str | None:
    checks = (
        (address in METADATA, "an instance-metadata address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (isinstance(address, ipaddress.IPv4Address) and address in _CGNAT,
         "a shared (CGNAT) address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a global address"),
    )
    return next((reason for refused, reason in checks if refused), None)


def _carried_ipv4(address: Address, mapped_only: bool = False) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, NAT64), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    value = int(address)
    if value >> 32 == 0 and value > 1:  # ::a.b.c.d, IPv4-compatible (:: and ::1 are not)
        return ipaddress.IPv4Address(value)
    if mapped_only:
        return None
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in network for network in _NAT64):
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    return None


@dataclasses.dataclass(frozen=True)
class HostPattern:
    """One allow/deny list entry: ``name``, ``address``, ``network/bits``, each optionally
    followed by ``:port`` (IPv6 in brackets then: ``[::1]:8080``, ``[fd00::/8]:443``)."""

    name: str | None
    network: Network | None
    port: int | None

    @classmethod
    def parse(cls, text: str) -> HostPattern:
        host, port = _split_port(text.strip().lower())
        host = host.rstrip(".")
        if not host:
            raise ValueError(f"host list entry {text!r} names no host")
        try:
            network = ipaddress.ip_network(host, strict=False)
        except ValueError:
            return cls(name=_idna(host, text), network=None, port=port)
        if isinstance(network, ipaddress.IPv6Network) and network.prefixlen == 128:
            network = ipaddress.ip_network(parse(str(network.network_address)))
        return cls(name=None, network=network, port=port)

    def matches(self, host: str, port: int | None) -> bool:
        """Does the URL host (normalised; a name or an address) on ``port`` match?"""
        if self.port is not None and port != self.port:
            return False
        if self.name is not None:
            return host == self.name
        try:
            return self.contains(parse(host))
        except ValueError:
            return False  # a name: network entries match only addresses

    def contains(self, address: Address) -> bool:
        return (self.network is not None and address.version == self.network.version
                and address in self.network)

    def __str__(self) -> str:
        host = self.name if self.name is not None else str(self.network)
        if self.port is None:
            return host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"


def _split_port(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"host list entry {text!r} is not host, host:port or [ipv6]:port")
        return host, _port(rest[1:], text) if rest else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, _port(port, text)
    return text, None  # a name, an IPv4 address or network, or a bare IPv6 one


def _port(value: str, text: str) -> int:
    port = digits.parse(value)
    if port is None or not 0 < port < 65536:
        raise ValueError(f"host list entry {text!r} has a port that is not 1 to 65535")
    return port


def _idna(host: str, text: str) -> str:
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"host list entry {text!r} is not a valid host name") from None
