"""The glance-download import method: another region's image read with the caller's token.

The "other region" is a local HTTP server answering like Glance (the image record and its
``/file``); the caller's token and service catalog are what keystone mode puts in the request
context, and requests reach the import API through :class:`glint.imports.service.Imports`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from glint import app, errors
from glint.context import RequestContext
from glint.images import states
from glint.imports import methods
from glint.scripts import api_image_import
from glint.scripts.registry import Registry
from glint.stores import multi
from glint.tasks import handoff
from tests.httpserver import LocalServer
from tests.unit.api.support import CTX_A, add_image

DATA = b"remote image bytes " * 5000
SOURCE_ID = str(uuid.uuid4())
TOKEN = "gAAAA-user-token"


@pytest.fixture
def glint(make_glint: Callable[..., app.Glint]) -> app.Glint:
    return make_glint(registry=Registry.of({"api_image_import": api_image_import}),
                      enabled_import_methods=("glance-direct", "web-download",
                                              "glance-download"))


@pytest.fixture
def remote() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


def catalog(server: LocalServer, region: str = "RegionTwo") -> tuple[dict[str, Any], ...]:
    return ({"type": "identity", "endpoints": [{"region": region, "publicURL": "http://x"}]},
            {"type": "image", "name": "glance",
             "endpoints": [{"region": region, "publicURL": server.url(""),
                            "internalURL": server.url("/internal")}]})


def caller(server: LocalServer) -> RequestContext:
    return dataclasses.replace(CTX_A, auth_token=TOKEN, service_catalog=catalog(server))


def serve_source(server: LocalServer, data: bytes = DATA, **record: Any) -> None:
    image = {"id": SOURCE_ID, "status": "active", "disk_format": "raw",
             "container_format": "bare", "checksum": hashlib.md5(data).hexdigest(),
             "hw_cpu_cores": "5", "trait:STORAGE_DISK_SSD": "required", "os_distro": "rhel",
             "speed": "88mph", "os_glance_import_task": "not copied", **record}
    server.serve(f"/v2/images/{SOURCE_ID}", json.dumps(image).encode())
    server.serve(f"/v2/images/{SOURCE_ID}/file", data)


def start(glint: app.Glint, ctx: RequestContext, image_id: str, **method: Any) -> Any:
    body = {"method": {"name": "glance-download", "glance_image_id": SOURCE_ID,
                       "glance_region": "RegionTwo", **method}}
    request = methods.parse(body, None, glint.settings, multi.of(glint.images.store))
    task = glint.imports.start(ctx, image_id, request)
    assert task is not None
    return glint.tasks.get(ctx, task.id)


def target(glint: app.Glint) -> str:
    image = add_image(glint, CTX_A, disk_format="iso", container_format="ovf")
    glint.images.set_attributes(CTX_A, image.id, {}, {"hw_cpu_cores": "1",
                                                      "os_distro": "windows"})
    return image.id


def test_imports_the_data_formats_and_boot_properties(glint: app.Glint,
                                                      remote: LocalServer) -> None:
    serve_source(remote)
    image_id = target(glint)
    task = start(glint, caller(remote), image_id)
    assert task.status == "success", task.message
    image = glint.images.get(CTX_A, image_id)
    assert image.status == states.ACTIVE
    assert (image.disk_format, image.container_format) == ("raw", "bare")
    assert image.checksum == hashlib.md5(DATA).hexdigest()
    assert image.size == len(DATA)
    props = image.extra_properties
    assert props["hw_cpu_cores"] == "5" and props["os_distro"] == "rhel"
    assert props["trait:STORAGE_DISK_SSD"] == "required"
    assert "speed" not in props and props.get("os_glance_import_task") != "not copied"
    # Both requests went to the catalog's public endpoint, with the caller's token.
    assert [r.path for r in remote.requests] == [f"/v2/images/{SOURCE_ID}",
                                                 f"/v2/images/{SOURCE_ID}/file"]
    assert {r.headers.get("X-Auth-Token") for r in remote.requests} == {TOKEN}


def test_the_token_is_never_stored(glint: app.Glint, remote: LocalServer) -> None:
    serve_source(remote)
    task = start(glint, caller(remote), target(glint))
    assert TOKEN not in json.dumps(task.context) + json.dumps(task.input)


def test_the_task_is_bound_to_the_process_holding_the_token(glint: app.Glint,
                                                           remote: LocalServer) -> None:
    serve_source(remote)
    task = start(glint, caller(remote), target(glint))
    # A sibling API worker never claims it (tests/unit/test_binding.py).
    assert task.bound_to == glint.runner.owner


def test_interface_chooses_the_endpoint(glint: app.Glint, remote: LocalServer) -> None:
    serve_source(remote)
    task = start(glint, caller(remote), target(glint), glance_service_interface="internal")
    assert task.status == "failure"  # the internal URL serves nothing here
    assert remote.requests[0].path.startswith("/internal/")


@pytest.mark.parametrize(("method", "message"), [
    ({"glance_region": "not a region"}, "No image service endpoint in region"),
    ({"glance_service_interface": "not an interface"}, "No image service endpoint"),
])
def test_unknown_region_or_interface_fails_and_leaves_the_image(
        glint: app.Glint, remote: LocalServer, method: dict[str, str], message: str) -> None:
    serve_source(remote)
    image_id = target(glint)
    task = start(glint, caller(remote), image_id, **method)
    assert task.status == "failure" and message in task.message
    image = glint.images.get(CTX_A, image_id)
    assert image.status == states.QUEUED
    assert image.extra_properties["hw_cpu_cores"] == "1"
    assert (image.disk_format, image.container_format) == ("iso", "ovf")
    assert remote.requests == []


def test_missing_source_fails_with_the_image_queued(glint: app.Glint,
                                                   remote: LocalServer) -> None:
    image_id = target(glint)
    task = start(glint, caller(remote), image_id)
    assert task.status == "failure" and "was not found" in task.message
    assert glint.images.get(CTX_A, image_id).status == states.QUEUED


def test_data_not_matching_the_source_checksum_is_refused_and_reverted(
        glint: app.Glint, remote: LocalServer) -> None:
    serve_source(remote, checksum=hashlib.md5(b"other").hexdigest())
    image_id = target(glint)
    task = start(glint, caller(remote), image_id)
    assert task.status == "failure" and "checksum" in task.message
    image = glint.images.get(CTX_A, image_id)
    assert image.status == states.QUEUED and image.location is None
    assert (image.disk_format, image.extra_properties["os_distro"]) == ("iso", "windows")


def test_inactive_source_is_refused(glint: app.Glint, remote: LocalServer) -> None:
    serve_source(remote, status="queued")
    task = start(glint, caller(remote), target(glint))
    assert task.status == "failure" and "not active" in task.message


@pytest.mark.parametrize(("method", "message"), [
    ({"glance_image_id": "foo"}, "does not look like a UUID"),
    ({"glance_region": ""}, "glance_region"),
])
def test_bad_requests_are_400(glint: app.Glint, method: dict[str, str], message: str) -> None:
    body = {"method": {"name": "glance-download", "glance_image_id": SOURCE_ID,
                       "glance_region": "RegionTwo", **method}}
    with pytest.raises(errors.BadRequest, match=message):
        methods.parse(body, None, glint.settings, multi.of(glint.images.store))


def test_needs_the_callers_token(glint: app.Glint) -> None:
    with pytest.raises(errors.BadRequest, match="keystone"):
        start(glint, CTX_A, target(glint))


def test_lost_credentials_fail_the_task_with_the_image_queued(glint: app.Glint,
                                                             remote: LocalServer,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    serve_source(remote)
    monkeypatch.setattr(glint.runner.handoff, "get", lambda task_id: None)
    image_id = target(glint)
    task = start(glint, caller(remote), image_id)
    assert task.status == "failure" and "import the image again" in task.message
    assert glint.images.get(CTX_A, image_id).status == states.QUEUED


def test_handoff_entries_last_until_discarded_or_expired() -> None:
    box = handoff.Handoff(ttl=60)
    box.put("t", handoff.Credentials("tok", ()))
    assert box.get("t") == handoff.Credentials("tok", ())
    assert box.get("t") == handoff.Credentials("tok", ())  # a re-run reads them again
    box.discard("t")
    assert box.get("t") is None
    expired = handoff.Handoff(ttl=-1)
    expired.put("t", handoff.Credentials("tok", ()))
    assert expired.get("t") is None


def test_the_import_drops_the_token_when_it_ends(glint: app.Glint, remote: LocalServer) -> None:
    serve_source(remote)
    task = start(glint, caller(remote), target(glint))
    assert task.status == "success"
    assert glint.runner.handoff.get(task.id) is None
