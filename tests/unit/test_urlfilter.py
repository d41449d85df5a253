"""The import URL filter: scheme, credentials, host lists, port, and how refusals read."""

from __future__ import annotations

import pytest

from glint import errors, urlfilter
from glint import settings as settings_mod


def _filter(allowed: tuple[str, ...] = (), disallowed: tuple[str, ...] = (),
            schemes: tuple[str, ...] = ("http", "https"),
            ports: tuple[int, ...] = ()) -> urlfilter.UrlFilter:
    return urlfilter.UrlFilter(allowed_schemes=schemes, allowed_hosts=allowed,
                               disallowed_hosts=disallowed, allowed_ports=ports)


@pytest.mark.parametrize("url, host, port", [
    ("http://example.org/image.qcow2", "example.org", None),
    ("https://EXAMPLE.org.:8443/a?b=c", "example.org", 8443),
    ("HTTP://example.org/", "example.org", None),
    ("http://[2001:4860:0:0::8888]:8080/x", "2001:4860::8888", 8080),
    ("http://bücher.example/", "xn--bcher-kva.example", None),
])
def test_accepted_urls_come_back_normalised(url: str, host: str, port: int | None) -> None:
    target = _filter().check(url)
    assert (target.url, target.host, target.port) == (url, host, port)


@pytest.mark.parametrize("url, reason", [
    ("", "empty"),
    ("example.org/image", "no scheme"),
    ("file:///etc/passwd", "scheme 'file' is not allowed (allowed: http, https)"),
    ("ftp://example.org/x", "scheme 'ftp' is not allowed"),
    ("http:///path-only", "no host"),
    ("http://user:secret@example.org/", "credentials"),
    ("http://user@example.org/", "credentials"),
    ("http://example.org:0/", "port"),
    ("http://example.org:65536/", "port"),
    ("http://example.org:http/", "port"),
    ("http://[::1/", "not a valid URL"),
    ("http://exa mple.org/", "whitespace"),
    ("http://example.org\\@evil.test/", "backslash"),
    ("http://example.org/\r\nHost: evil", "control"),
    ("http://127.0.0.%31/", "not a valid host name"),
    ("http://2130706433/", "non-standard form"),
    ("http://127.1/", "non-standard form"),
    ("http://0x7f000001/", "non-standard form"),
    ("http://0177.0.0.1/", "non-standard form"),
])
def test_refusals_say_which_rule_failed(url: str, reason: str) -> None:
    with pytest.raises(errors.BadRequest) as caught:
        _filter().check(url)
    assert reason in caught.value.message


def test_allow_list_admits_only_listed_hosts() -> None:
    url_filter = _filter(allowed=("127.0.0.1", "Images.Example.org"))
    assert url_filter.check("http://127.0.0.1:8000/x").host == "127.0.0.1"
    assert url_filter.check("http://images.example.org/x").host == "images.example.org"
    for url in ("http://127.0.0.2:8000/x", "http://localhost/x", "http://example.org/x"):
        with pytest.raises(errors.BadRequest, match="not in the allowed hosts"):
            url_filter.check(url)


def test_empty_allow_list_admits_any_host() -> None:
    assert _filter().check("http://anything.test/").host == "anything.test"


def test_deny_list_refuses_listed_hosts_in_any_spelling() -> None:
    url_filter = _filter(disallowed=("169.254.169.254", "[::1]", "metadata.internal"))
    for url in ("http://169.254.169.254/latest", "http://[::1]/", "http://[0::1]:80/",
                "http://METADATA.internal./x"):
        with pytest.raises(errors.BadRequest, match="in the disallowed hosts"):
            url_filter.check(url)
    assert url_filter.check("http://example.org/").host == "example.org"


def test_deny_list_applies_with_an_allow_list() -> None:
    url_filter = _filter(allowed=("a.test", "b.test"), disallowed=("b.test",))
    assert url_filter.check("http://a.test/").host == "a.test"
    with pytest.raises(errors.BadRequest, match="disallowed"):
        url_filter.check("http://b.test/")


def test_no_allowed_schemes_refuses_everything() -> None:
    with pytest.raises(errors.BadRequest, match=r"allowed: none"):
        _filter(schemes=()).check("http://example.org/")


def test_built_from_settings() -> None:
    settings = settings_mod.Settings(import_allowed_schemes=("https",),
                                     import_allowed_hosts=("a.test",),
                                     import_disallowed_hosts=("b.test",))
    url_filter = urlfilter.UrlFilter.from_settings(settings)
    assert url_filter.check("https://a.test/").scheme == "https"
    with pytest.raises(errors.BadRequest, match="scheme 'http'"):
        url_filter.check("http://a.test/")


def test_ports_are_limited_for_hosts_off_the_allow_list() -> None:
    url_filter = _filter(ports=(80, 443))
    assert url_filter.check("https://example.org/x").port is None  # 443, the scheme's
    assert url_filter.check("http://example.org:80/x").port == 80
    with pytest.raises(errors.BadRequest, match="port 8080 is not allowed"):
        url_filter.check("http://example.org:8080/x")
    trusted = _filter(allowed=("example.org",), ports=(80, 443))
    assert trusted.check("http://example.org:8080/x").port == 8080


@pytest.mark.parametrize("host, reason", [
    ("127.0.0.1", "a loopback address"), ("[::1]", "a loopback address"),
    ("10.0.0.1", "a private address"), ("169.254.169.254", "an instance-metadata address"),
    ("[fe80::1]", "a link-local address"), ("100.64.0.1", "a shared (CGNAT) address"),
    ("[::ffff:192.168.0.1]", "a private address"), ("0.0.0.0", "an unspecified address"),
    ("[2002:a00:1::]", "a private address carried in an IPv6 address"),
    ("192.0.2.1", "a private address"), ("239.1.2.3", "a multicast address"),
])
def test_ip_literals_must_be_global_addresses(host: str, reason: str) -> None:
    with pytest.raises(errors.BadRequest) as caught:
        _filter().check(f"http://{host}/x")
    assert f"is {reason}: imports may not reach it" in caught.value.message


def test_allowed_hosts_lift_the_address_rule() -> None:
    url_filter = _filter(allowed=("127.0.0.1", "10.0.0.0/8", "[::1]:8080"))
    for url in ("http://127.0.0.1:1234/", "http://10.2.3.4/", "http://[::1]:8080/"):
        url_filter.check(url)
    for url in ("http://127.0.0.2/", "http://[::1]:8081/", "http://11.0.0.1/"):
        with pytest.raises(errors.BadRequest, match="not in the allowed hosts"):
            url_filter.check(url)


def test_settings_host_lists_are_parsed() -> None:
    settings = settings_mod.Settings(import_allowed_hosts=("10.0.0.0/8", "[::1]:80"),
                                     import_allowed_ports=(8080,))
    url_filter = urlfilter.UrlFilter.from_settings(settings)
    assert [str(p) for p in url_filter.allowed_hosts] == ["10.0.0.0/8", "[::1/128]:80"]
    assert url_filter.allowed_ports == {8080}
