"""``PUT /v2/images/{id}/file``: every status code, and after each refusal or failure the image
is as it was (queued) with nothing in the store."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator

import pytest

from glint import app
from glint.api.app import create_app
from glint.images import states
from glint.notifiers.memory import MemoryNotifier
from tests.unit.api.data_support import (
    DISCONNECT,
    OCTET,
    BrokenStore,
    body,
    raw_request,
    staged_files,
    stored,
)
from tests.unit.api.support import (
    ADMIN,
    CTX_A,
    CTX_B,
    PROJECT_A,
    PROJECT_B,
    TestClient,
    add_image,
    error_of,
)

DATA = bytes(range(256)) * 4096 + b"tail"  # 1 MiB and 4 bytes


def put(client: TestClient, image_id: str, data: bytes | Iterator[bytes],
        headers: dict[str, str] | None = None) -> object:
    return client.put(f"/v2/images/{image_id}/file", content=data,
                      headers={**PROJECT_A, **OCTET, **(headers or {})})


def assert_untouched(glint: app.Glint, image_id: str) -> None:
    """Queued, no data recorded, no bytes anywhere."""
    image = glint.images.get(CTX_A, image_id)
    assert image.status == states.QUEUED
    assert (image.size, image.checksum, image.os_hash_value, image.location) == (None,) * 4
    assert stored(glint) == {}
    assert staged_files(glint) == []


def test_upload_activates_with_both_hashes(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    response = put(client, image.id, DATA, {"x-openstack-image-size": str(len(DATA))})
    assert response.status_code == 204
    assert response.content == b""
    got = glint.images.get(CTX_A, image.id)
    assert got.status == states.ACTIVE
    assert got.size == len(DATA)
    assert got.checksum == hashlib.md5(DATA).hexdigest()
    assert (got.os_hash_algo, got.os_hash_value) == ("sha512", hashlib.sha512(DATA).hexdigest())
    assert stored(glint) == {got.location: DATA}
    download = client.get(f"/v2/images/{image.id}/file", headers=PROJECT_A)
    assert download.content == DATA
    assert download.headers["content-md5"] == got.checksum


def test_notifications_around_the_upload(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    notifier = glint.notifier.inner  # type: ignore[attr-defined]
    assert isinstance(notifier, MemoryNotifier)
    before = len(notifier.events)
    put(client, image.id, DATA)
    events = notifier.events[before:]
    types = [e.event_type for e in events]
    assert [t for t in types if t != "image.update"] == ["image.prepare", "image.activate",
                                                         "image.upload"]
    prepare = events[types.index("image.prepare")].payload
    assert prepare["status"] == "saving" and prepare["os_glance_importing_to_stores"] == []
    upload = events[types.index("image.upload")].payload
    assert upload["status"] == "active" and upload["size"] == len(DATA)
    assert "location" not in upload


def test_chunked_body(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    pieces = [DATA[i:i + 1000] for i in range(0, len(DATA), 1000)]
    assert put(client, image.id, iter(pieces)).status_code == 204
    got = glint.images.get(CTX_A, image.id)
    assert (got.status, got.size) == (states.ACTIVE, len(DATA))
    assert stored(glint) == {got.location: DATA}


def test_empty_body_makes_an_empty_image(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    assert put(client, image.id, b"").status_code == 204
    got = glint.images.get(CTX_A, image.id)
    assert (got.status, got.size, got.checksum) == (states.ACTIVE, 0, hashlib.md5().hexdigest())


@pytest.mark.parametrize("content_type", [None, "application/json", "text/plain",
                                          "application/octet-streamx"])
def test_other_content_types_are_415(client: TestClient, glint: app.Glint,
                                     content_type: str | None) -> None:
    image = add_image(glint, CTX_A)
    headers = dict(PROJECT_A)
    if content_type:
        headers["Content-Type"] = content_type
    response = client.put(f"/v2/images/{image.id}/file", content=DATA, headers=headers)
    assert response.status_code == 415
    assert "application/octet-stream" in error_of(response)["message"]
    assert_untouched(glint, image.id)


def test_content_type_parameters_are_fine(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    response = put(client, image.id, DATA, {"Content-Type": "Application/Octet-Stream; x=1"})
    assert response.status_code == 204


@pytest.mark.parametrize("declared", [len(DATA) - 1, len(DATA) + 1, 0])
def test_size_mismatch_is_400_and_image_back_to_queued(client: TestClient, glint: app.Glint,
                                                       declared: int) -> None:
    image = add_image(glint, CTX_A)
    response = put(client, image.id, DATA, {"x-openstack-image-size": str(declared)})
    assert response.status_code == 400
    assert "size mismatch" in error_of(response)["message"]
    assert_untouched(glint, image.id)


@pytest.mark.parametrize("declared", ["-1", "abc", "1.5", "9" * 30])
def test_invalid_size_header_is_400(client: TestClient, glint: app.Glint, declared: str) -> None:
    image = add_image(glint, CTX_A)
    response = put(client, image.id, DATA, {"x-openstack-image-size": declared})
    assert response.status_code == 400
    assert "x-openstack-image-size" in error_of(response)["message"]
    assert_untouched(glint, image.id)


def test_image_not_queued_is_409(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, b"original")
    response = put(client, image.id, DATA)
    assert response.status_code == 409
    assert "queued" in error_of(response)["message"]
    got = glint.images.get(CTX_A, image.id)
    assert got.status == states.ACTIVE and stored(glint) == {got.location: b"original"}


def test_staged_image_is_409(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    client.put(f"/v2/images/{image.id}/stage", content=b"staged", headers={**PROJECT_A, **OCTET})
    response = put(client, image.id, DATA)
    assert response.status_code == 409
    assert "staged" in error_of(response)["message"]
    assert glint.images.get(CTX_A, image.id).status == states.UPLOADING
    assert stored(glint) == {}


def test_missing_formats_are_400(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, disk_format=None)
    response = put(client, image.id, DATA)
    assert response.status_code == 400
    assert "disk_format" in error_of(response)["message"]
    assert_untouched(glint, image.id)


def test_other_projects_visible_image_is_403(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, visibility="public")
    response = client.put(f"/v2/images/{image.id}/file", content=DATA,
                          headers={**PROJECT_B, **OCTET})
    assert response.status_code == 403
    assert_untouched(glint, image.id)


def test_other_projects_private_image_is_404(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_B, visibility="private")
    assert put(client, image.id, DATA).status_code == 404
    assert glint.images.get(CTX_B, image.id).status == states.QUEUED


def test_admin_may_upload_to_any_image(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_B, visibility="private")
    response = client.put(f"/v2/images/{image.id}/file", content=DATA, headers={**ADMIN, **OCTET})
    assert response.status_code == 204
    assert glint.images.get(CTX_B, image.id).status == states.ACTIVE


def test_unknown_image_is_404(client: TestClient) -> None:
    response = put(client, "00000000-0000-0000-0000-000000000000", DATA)
    assert response.status_code == 404
    assert put(client, "not-a-uuid", DATA).status_code == 404


@pytest.fixture
def capped(make_glint: Callable[..., app.Glint]) -> Iterator[tuple[TestClient, app.Glint]]:
    """A client over a glint whose image_size_cap is 1000 bytes."""
    glint = make_glint(image_size_cap=1000)
    with TestClient(create_app(glint)) as client:
        yield client, glint


@pytest.mark.parametrize("chunked", [False, True])
def test_size_cap_is_413(capped: tuple[TestClient, app.Glint], chunked: bool) -> None:
    client, glint = capped
    image = add_image(glint, CTX_A)
    data = b"x" * 3000
    content = iter([data[:1500], data[1500:]]) if chunked else data
    response = put(client, image.id, content)
    assert response.status_code == 413
    assert "1000" in error_of(response)["message"]
    assert_untouched(glint, image.id)


def test_declared_size_over_the_cap_is_413_before_reading(
        capped: tuple[TestClient, app.Glint]) -> None:
    client, glint = capped
    image = add_image(glint, CTX_A)
    response = put(client, image.id, b"x" * 10, {"x-openstack-image-size": "1001"})
    assert response.status_code == 413
    assert_untouched(glint, image.id)


def test_store_failure_puts_the_image_back(make_glint: Callable[..., app.Glint]) -> None:
    glint = make_glint(store=BrokenStore())
    image = add_image(glint, CTX_A)
    with TestClient(create_app(glint)) as client:
        response = put(client, image.id, DATA * 3)
    assert response.status_code == 413  # a full store, as Glance answers it
    assert error_of(response)["message"].startswith("Image storage media is full")
    assert_untouched(glint, image.id)
    assert any(e.event_type == "image.upload" and e.priority == "ERROR"
               for e in glint.notifier.inner.events)  # type: ignore[attr-defined]


def test_client_disconnect_mid_upload_leaves_nothing(glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    headers = {**PROJECT_A, **OCTET, "content-length": str(len(DATA) * 4)}
    start = raw_request(glint, "PUT", f"/v2/images/{image.id}/file", headers,
                        [body(DATA), body(DATA), DISCONNECT])
    assert start.get("status", 400) == 400  # nobody reads it
    assert_untouched(glint, image.id)


def test_image_deleted_during_upload_is_410(glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)

    def delete_once_saving(index: int) -> None:
        if index != 1:
            return
        deadline = time.monotonic() + 10
        while glint.images.get(CTX_A, image.id).status != states.SAVING:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        glint.images.delete(CTX_A, image.id)

    start = raw_request(glint, "PUT", f"/v2/images/{image.id}/file", {**PROJECT_A, **OCTET},
                        [body(DATA), body(DATA, more=False)], between=delete_once_saving)
    assert start["status"] == 410
    assert stored(glint) == {}


def test_put_twice_the_second_is_409(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    assert put(client, image.id, DATA).status_code == 204
    assert put(client, image.id, b"other").status_code == 409
    got = glint.images.get(CTX_A, image.id)
    assert stored(glint) == {got.location: DATA}

