"""Header limits: Glance's answers to over-long, too large and too many headers, from the
protocol ``glint serve`` runs, before the app (here in header mode; tests/keystone has the
keystone mode's)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from glint import app
from glint.api.app import create_app
from glint.server import header_limits
from glint.server.protocol import GlintProtocol
from tests import rawhttp
from tests.serving import serving

KiB = 1024


def lines(*sizes: int) -> list[tuple[bytes, bytes]]:
    """Headers whose lines ("Name: value\\r\\n") have these sizes."""
    return [(f"x-h{n:03d}".encode(), b"v" * (size - 10)) for n, size in enumerate(sizes)]


def test_limits_are_glance_servers() -> None:
    assert header_limits.refusal(lines(16383)) is None
    assert header_limits.refusal(lines(16384)) is header_limits.LINE_TOO_LONG
    assert header_limits.refusal(lines(*[100] * 100)) is None
    assert header_limits.refusal(lines(*[100] * 101)) is header_limits.TOO_MANY
    assert header_limits.refusal(lines(*[16000] * 4)) is None
    assert header_limits.refusal(lines(*[16000] * 5)) is header_limits.TOO_LARGE
    # Read in order, as Glance's server reads them: the first line over a limit decides.
    assert header_limits.refusal(lines(*[16000] * 5, 20000)) is header_limits.TOO_LARGE


@pytest.fixture
def port(make_glint: Callable[..., app.Glint]) -> Iterator[int]:
    with serving(create_app(make_glint(), manage_lifecycle=False), GlintProtocol) as bound:
        yield bound


def refused(answer: rawhttp.Answer, status: int, message: str) -> None:
    assert answer.status == status
    assert answer.headers["connection"] == "close"
    assert json.loads(answer.body)["error"]["message"].startswith(message)


def test_a_header_line_of_16_kib_is_400(port: int) -> None:
    token = "t" * (16 * KiB)
    answer = rawhttp.exchange(port, rawhttp.head("/v2/images", [("X-Auth-Token", token)]))
    refused(answer, 400, "Header Line Too Long")


@pytest.mark.parametrize(("size", "message"), [
    (64 * KiB, "Header Line Too Long"),
    # Past MAX_HEAD the head is refused unparsed (parsed, its one line would be too long).
    (1024 * KiB, "Headers Too Large"),
])
def test_oversized_tokens_are_400(port: int, size: int, message: str) -> None:
    request = rawhttp.head("/v2/images", [("X-Auth-Token", "t" * size)])
    refused(rawhttp.exchange(port, request), 400, message)


def test_more_than_100_headers_is_431(port: int) -> None:
    many = [(f"X-Extra-{n}", "v") for n in range(100)]
    refused(rawhttp.exchange(port, rawhttp.head("/v2/images", many)), 431, "Too many headers")


def test_requests_within_the_limits_are_served_and_keep_their_bodies(port: int) -> None:
    # 99 headers besides Host, one of them just under a line's limit.
    headers = [("X-Big", "b" * (16 * KiB - 12)), *((f"X-Extra-{n}", "v") for n in range(98))]
    assert rawhttp.exchange(port, rawhttp.head("/v2/images", headers)).status == 200
    image_body = b'{"disk_format": "raw", "container_format": "bare"}'
    created = rawhttp.exchange(port, rawhttp.head(
        "/v2/images", [("Content-Type", "application/json"),
                       ("Content-Length", str(len(image_body)))], method="POST") + image_body)
    assert created.status == 201
    image = json.loads(created.body)["id"]
    # A small head and a large body in one write: only the head counts.
    body = b"\0" * (512 * KiB)
    upload = rawhttp.head(f"/v2/images/{image}/file",
                          [("Content-Type", "application/octet-stream"),
                           ("Content-Length", str(len(body)))], method="PUT") + body
    assert rawhttp.exchange(port, upload, chunk=len(upload)).status == 204
