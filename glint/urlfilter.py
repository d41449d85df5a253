"""The URL filter: decides whether an import may fetch a URL.

Checked when a task is created and again for every redirect hop, in this order: the URL is
well-formed, its scheme is allowed, it carries no credentials, its host is allowed (on the
allow-list when there is one, never on the deny-list) and its port, when given, is a real port.
Every refusal is a :class:`glint.errors.BadRequest` that says which rule failed.

Host rules compare the host as written in the URL, normalised (lower case, no trailing dot, IP
literals in their standard form); hosts spelled as ambiguous numbers (``2130706433``,
``127.1``, ``0x7f.1``) are refused because resolvers read them as addresses that no list
names. Rules on the *resolved* address (loopback, private, link-local, metadata) belong in
:meth:`UrlFilter.check` after the host rules, as one more step on the :class:`Target` it returns.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import urllib.parse
from collections.abc import Iterable

from glint import errors
from glint.settings import Settings

_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x20\x7f\\]")
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]*))*$")
_HOST_NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")


@dataclasses.dataclass(frozen=True)
class Target:
    """A URL that passed the filter, with the parts the rules looked at."""

    url: str
    scheme: str
    host: str  # normalised; IPv6 without brackets
    port: int | None  # as written in the URL; None when it has no explicit port


class UrlFilter:
    """The import reachability rules, built from settings (``import_*``)."""

    def __init__(self, *, allowed_schemes: Iterable[str], allowed_hosts: Iterable[str] = (),
                 disallowed_hosts: Iterable[str] = ()) -> None:
        self.allowed_schemes = frozenset(s.lower() for s in allowed_schemes)
        self.allowed_hosts = frozenset(_normalise_listed(h) for h in allowed_hosts)
        self.disallowed_hosts = frozenset(_normalise_listed(h) for h in disallowed_hosts)

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlFilter:
        return cls(allowed_schemes=settings.import_allowed_schemes,
                   allowed_hosts=settings.import_allowed_hosts,
                   disallowed_hosts=settings.import_disallowed_hosts)

    def check(self, url: str) -> Target:
        """Return the parsed ``url`` if an import may fetch it; raise BadRequest if not."""
        parts = _parse(url)
        self._check_scheme(parts.scheme)
        if parts.username is not None or parts.password is not None:
            raise errors.BadRequest("Import URL must not contain credentials (user:password@)")
        host = _host(parts)
        self._check_host(host)
        return Target(url=url, scheme=parts.scheme, host=host, port=_port(parts))

    def _check_scheme(self, scheme: str) -> None:
        if scheme not in self.allowed_schemes:
            allowed = ", ".join(sorted(self.allowed_schemes)) or "none"
            raise errors.BadRequest(f"Import URL scheme {scheme!r} is not allowed "
                                    f"(allowed: {allowed})")

    def _check_host(self, host: str) -> None:
        if self.allowed_hosts and host not in self.allowed_hosts:
            raise errors.BadRequest(f"Import URL host {host!r} is not in the allowed hosts")
        if host in self.disallowed_hosts:
            raise errors.BadRequest(f"Import URL host {host!r} is in the disallowed hosts")


def _parse(url: str) -> urllib.parse.SplitResult:
    if not url:
        raise errors.BadRequest("Import URL is empty")
    if _UNSAFE_CHARACTERS.search(url):
        raise errors.BadRequest("Import URL contains whitespace, control characters "
                                "or backslashes")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise errors.BadRequest(f"Import URL is not a valid URL: {exc}") from None
    if not parts.scheme:
        raise errors.BadRequest("Import URL has no scheme (expected e.g. https://...)")
    return parts


def _host(parts: urllib.parse.SplitResult) -> str:
    host = parts.hostname  # lower-cased, brackets stripped
    if not host:
        raise errors.BadRequest("Import URL has no host")
    return _normalise(host)


def _port(parts: urllib.parse.SplitResult) -> int | None:
    try:
        port = parts.port
    except ValueError:
        raise errors.BadRequest("Import URL port is not a number from 1 to 65535") from None
    if port == 0:
        raise errors.BadRequest("Import URL port is not a number from 1 to 65535")
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
        raise errors.BadRequest(f"Import URL host {host!r} is not a valid host name") from None
    if not _HOST_NAME.match(host):
        raise errors.BadRequest(f"Import URL host {host!r} is not a valid host name")
    return host


def _normalise_listed(host: str) -> str:
    """Settings may write IPv6 literals with brackets; compare them like URL hosts."""
    host = host.strip().lower().strip("[]").rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host
