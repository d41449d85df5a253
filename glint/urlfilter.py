"""The URL filter: decides whether an import may fetch a URL, and which addresses it may reach.

Checked when a task is created and again for every redirect hop (:meth:`UrlFilter.check`), in
this order: the URL is well-formed, its scheme is allowed, it carries no credentials, its host
is not on the deny-list, it is on the allow-list when there is one, and then, for a host that
is not on the allow-list, its port is allowed and (for an IP literal) its address is one an
import may reach (:mod:`glint.addresses`). Every refusal is a :class:`glint.errors.BadRequest`
that says which rule failed; one for a URL that does not parse is a
:class:`glint.errors.MalformedUrl`.

Host names are resolved only when connecting: :meth:`UrlFilter.resolve` runs in the fetching
code's network backend (:mod:`glint.scripts.fetch`), checks *every* address the name resolves
to, and the connection is made to those checked addresses, never to the name again (no DNS
rebinding between the check and the connect).

An allow-list entry is trusted: a URL whose host (and port, when the entry pins one) matches
an entry may use any port and resolve to any address, loopback and private ones included. The
deny-list always applies, to the host as written and to every address it resolves to.

Host rules compare the host as written in the URL, normalised (lower case, no trailing dot, IP
literals in their standard form); hosts spelled as ambiguous numbers (``2130706433``,
``127.1``, ``0x7f.1``) are refused because resolvers read them as addresses that no list
names. Network entries (``10.0.0.0/8``) match IP literals and resolved addresses, never names.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import socket
import urllib.parse
from collections.abc import Iterable
from typing import TYPE_CHECKING

from glint import addresses, errors
from glint.settings import Settings

if TYPE_CHECKING:
    from glint.scripts.contract import ScriptSettings

_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x20\x7f\\]")
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]*))*$")
_HOST_NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclasses.dataclass(frozen=True)
class Target:
    """A URL that passed the filter, with the parts the rules looked at."""

    url: str
    scheme: str
    host: str  # normalised; IPv6 without brackets
    port: int | None  # as written in the URL; None when it has no explicit port


class UrlFilter:
    """The import reachability rules, built from settings (``import_*``)."""

    def __init__(self, *, allowed_schemes: Iterable[str] = ("http", "https"),
                 allowed_hosts: Iterable[str] = (), disallowed_hosts: Iterable[str] = (),
                 allowed_ports: Iterable[int] = (80, 443)) -> None:
        self.allowed_schemes = frozenset(s.lower() for s in allowed_schemes)
        self.allowed_hosts = tuple(addresses.HostPattern.parse(h) for h in allowed_hosts)
        self.disallowed_hosts = tuple(addresses.HostPattern.parse(h) for h in disallowed_hosts)
        self.allowed_ports = frozenset(allowed_ports)

    @classmethod
    def from_settings(cls, settings: Settings | ScriptSettings) -> UrlFilter:
        return cls(allowed_schemes=settings.import_allowed_schemes,
                   allowed_hosts=settings.import_allowed_hosts,
                   disallowed_hosts=settings.import_disallowed_hosts,
                   allowed_ports=settings.import_allowed_ports)

    def check(self, url: str) -> Target:
        """Return the parsed ``url`` if an import may fetch it; raise BadRequest if not."""
        parts = _parse(url)
        self._check_scheme(parts.scheme)
        if parts.username is not None or parts.password is not None:
            raise errors.BadRequest("Import URL must not contain credentials (user:password@)")
        host = _host(parts)
        port = _port(parts)
        self._check_host(host, port if port is not None else DEFAULT_PORTS.get(parts.scheme))
        return Target(url=url, scheme=parts.scheme, host=host, port=port)

    def resolve(self, host: str, port: int) -> list[addresses.Address]:
        """The addresses to connect to for ``host``:``port``, every one of them checked.

        ``host`` is the URL's host (a name or an IP literal). Raises BadRequest if the host
        fails the host rules or if *any* address it resolves to is refused, and
        ``socket.gaierror`` if it does not resolve.
        """
        host = _normalise(host.strip("[]"))
        trusted = self._check_host(host, port)
        found: list[addresses.Address] = []
        for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
            address = addresses.parse(str(info[4][0]))
            if address not in found:
                self._check_address(host, address, trusted)
                found.append(address)
        return found

    def _check_scheme(self, scheme: str) -> None:
        if scheme not in self.allowed_schemes:
            allowed = ", ".join(sorted(self.allowed_schemes)) or "none"
            raise errors.BadRequest(f"Import URL scheme {scheme!r} is not allowed "
                                    f"(allowed: {allowed})")

    def _check_host(self, host: str, port: int | None) -> bool:
        """Apply the host rules; return whether the host is trusted (on the allow-list)."""
        if any(pattern.matches(host, None) for pattern in self.disallowed_hosts
               if pattern.port is None or pattern.port == port):
            raise errors.BadRequest(f"Import URL host {host!r} is in the disallowed hosts")
        if self.allowed_hosts:
            if not any(pattern.matches(host, port) for pattern in self.allowed_hosts):
                raise errors.BadRequest(f"Import URL host {host!r}{_on(port)} is not in the "
                                        "allowed hosts")
            return True
        if self.allowed_ports and port not in self.allowed_ports:
            allowed = ", ".join(str(p) for p in sorted(self.allowed_ports))
            raise errors.BadRequest(f"Import URL port {port} is not allowed (allowed: "
                                    f"{allowed}; or list the host in import_allowed_hosts)")
        try:
            address = addresses.parse(host)
        except ValueError:
            return False  # a name: its addresses are checked when connecting
        self._check_address(host, address, trusted=False)
        return False

    def _check_address(self, host: str, address: addresses.Address, trusted: bool) -> None:
        spelled = f"{host!r} is" if _is_ip(host) else f"{host!r} resolves to {address}, which is"
        if any(pattern.contains(address) for pattern in self.disallowed_hosts):
            raise errors.BadRequest(f"Import URL host {spelled} in the disallowed hosts")
        reason = None if trusted else addresses.refusal(address)
        if reason is not None:
            raise errors.BadRequest(f"Import URL host {spelled} {reason}: imports may not "
                                    "reach it (unless it is listed in import_allowed_hosts)")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _on(port: int | None) -> str:
    return "" if port is None else f" (port {port})"


def _parse(url: str) -> urllib.parse.SplitResult:
    if not url:
        raise errors.MalformedUrl("Import URL is empty")
    if _UNSAFE_CHARACTERS.search(url):
        raise errors.MalformedUrl("Import URL contains whitespace, control characters "
                                "or backslashes")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise errors.MalformedUrl(f"Import URL is not a valid URL: {exc}") from None
    if not parts.scheme:
        raise errors.MalformedUrl("Import URL has no scheme (expected e.g. https://...)")
    return parts


def _host(parts: urllib.parse.SplitResult) -> str:
    host = parts.hostname  # lower-cased, brackets stripped
    if not host:
        raise errors.MalformedUrl("Import URL has no host")
    return _normalise(host)


def _port(parts: urllib.parse.SplitResult) -> int | None:
    try:
        port = parts.port
    except ValueError:
        raise errors.MalformedUrl("Import URL port is not a number from 1 to 65535") from None
    if port == 0:
        raise errors.MalformedUrl("Import URL port is not a number from 1 to 65535")
    return port


def _normalise(host: str) -> str:
    host = host.lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if _NUMERIC_HOST.match(host):
        raise errors.BadRequest(f"Import URL host {host!r} is a numeric address in a "
                                "non-standard form; write it as a dotted quad")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise errors.MalformedUrl(f"Import URL host {host!r} is not a valid host name") from None
    if not _HOST_NAME.match(host):
        raise errors.MalformedUrl(f"Import URL host {host!r} is not a valid host name")
    return host
