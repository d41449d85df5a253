"""An import source redirecting to a malformed (or refused) URL fails its task saying so.

``Location: http:\\\\127.0.0.1:9412\\x`` used to fail the task with "internal error
(InvalidURL)" and a traceback: httpx raised while building the next request. The Location is
now checked as sent, before httpx reads it (:func:`glint.scripts.fetch.check_location`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from glint import app
from glint.context import RequestContext
from glint.db import models
from tests.conftest import MakeGlint
from tests.httpserver import LocalServer

DATA = b"image bytes" * 100
NOT_VALID = "which is not a valid URL"


@pytest.fixture
def http_server() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


def wire(text: str) -> str:
    """``text`` as its UTF-8 bytes on the wire (the test server writes headers as Latin-1)."""
    return text.encode().decode("latin-1")


def imported(glint: app.Glint, ctx: RequestContext, url: str) -> models.Task:
    task = glint.tasks.create(ctx, "import", {"import_from": url, "import_from_format": "raw",
                                              "image_properties": {"name": "redirected"}})
    return glint.tasks.get(ctx, task.id)  # the inline executor ran it


@pytest.mark.parametrize(("location", "reason"), [
    ("http:\\\\127.0.0.1:{port}\\x", "backslashes"),  # the case
    ("http://127.0.0.1:99999/image", "port is not a number"),
    ("http://127.0.0.1:0/image", "port is not a number"),
    (wire("http://127.0.0.1:\uff19\uff14/image"), "port is not a number"),  # full-width digits
    ("http://127.0.0.1:\u00b2/image", "port is not a number"),
    ("http://127.0.0.1:80:80/image", "port is not a number"),
    ("http:///image", "has no host"),
    ("http://:{port}/image", "has no host"),
    ("http://[::1/image", "Invalid IPv6 URL"),
    ("http://a..b/image", "not a valid host name"),
    (wire("http://\u00e4\u200b..x/image"), "not a valid host name"),  # non-ASCII, no IDNA
    ("http://ex ample/image", "whitespace"),
    ("http://evil.example\\@127.0.0.1:{port}/image", "backslashes"),
])
def test_a_malformed_location_fails_the_task_saying_so(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer,
        caplog: pytest.LogCaptureFixture, location: str, reason: str) -> None:
    glint = make_glint()
    port = http_server.url("/").split(":")[2].split("/")[0]
    http_server.serve("/image", DATA)
    start = http_server.redirect("/start", location.replace("{port}", port))
    task = imported(glint, ctx, start)
    assert task.status == "failure"
    assert f"{start} redirected to " in task.message
    assert NOT_VALID in task.message and reason in task.message, task.message
    assert "internal error" not in task.message
    assert [r.path for r in http_server.requests] == ["/start"]
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize(("location", "reason"), [
    ("http://user@127.0.0.1:{port}/image", "must not contain credentials"),
    ("http://127.0.0.1:{port}@evil.example/image", "must not contain credentials"),
    ("http://exämple.example/image", "'xn--exmple-cua.example' (port 80) is not in the allowed"),
    ("http://127.0.0.2:{port}/image", "is not in the allowed hosts"),
    ("ftp://127.0.0.1/image", "scheme 'ftp' is not allowed"),
])
def test_a_refused_location_fails_the_task_naming_the_rule(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer,
        location: str, reason: str) -> None:
    glint = make_glint()
    port = http_server.url("/").split(":")[2].split("/")[0]
    http_server.serve("/image", DATA)
    task = imported(glint, ctx, http_server.redirect("/start", location.replace("{port}", port)))
    assert task.status == "failure"
    assert "Redirect to " in task.message and reason in task.message, task.message
    assert [r.path for r in http_server.requests] == ["/start"]


def test_a_good_relative_location_is_still_followed(make_glint: MakeGlint, ctx: RequestContext,
                                                    http_server: LocalServer) -> None:
    glint = make_glint()
    http_server.serve("/image", DATA)
    task = imported(glint, ctx, http_server.redirect("/start", "image?x=1"))
    assert task.status == "success", task.message
    assert [r.path for r in http_server.requests] == ["/start", "/image?x=1"]
