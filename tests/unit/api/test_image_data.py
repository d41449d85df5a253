"""``GET /v2/images/{id}/file``: whole downloads, no data, byte ranges, deactivated images."""

from __future__ import annotations

import hashlib

import pytest

from glint import app
from glint.api.image_data import byte_range
from glint.images import states
from tests.unit.api.support import ADMIN, CTX_A, CTX_B, PROJECT_A, TestClient, add_image, error_of

DATA = bytes(range(256)) * 40  # 10240 bytes


def test_download_streams_the_bytes_with_md5(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, DATA)
    response = client.get(f"/v2/images/{image.id}/file", headers=PROJECT_A)
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["content-md5"] == hashlib.md5(DATA).hexdigest()
    assert "x-openstack-request-id" in response.headers


def test_image_without_data_is_204(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    response = client.get(f"/v2/images/{image.id}/file", headers=PROJECT_A)
    assert response.status_code == 204
    assert response.content == b""
    assert "content-md5" not in response.headers
    ranged = client.get(f"/v2/images/{image.id}/file",
                        headers={**PROJECT_A, "Range": "bytes=0-1"})
    assert ranged.status_code == 204


@pytest.mark.parametrize(("header", "first", "last"), [
    ("bytes=0-9", 0, 9), ("bytes=10000-", 10000, 10239), ("bytes=-5", 10235, 10239),
    ("bytes=10230-99999", 10230, 10239), ("bytes=-99999", 0, 10239),
])
def test_range_is_206(client: TestClient, glint: app.Glint, header: str, first: int,
                      last: int) -> None:
    image = add_image(glint, CTX_A, DATA)
    response = client.get(f"/v2/images/{image.id}/file", headers={**PROJECT_A, "Range": header})
    assert response.status_code == 206
    assert response.content == DATA[first:last + 1]
    assert response.headers["content-range"] == f"bytes {first}-{last}/{len(DATA)}"
    assert response.headers["content-length"] == str(last - first + 1)
    assert "content-md5" not in response.headers


@pytest.mark.parametrize("header", ["bytes=10240-", "bytes=20000-30000", "bytes=-0"])
def test_unsatisfiable_range_is_416(client: TestClient, glint: app.Glint, header: str) -> None:
    image = add_image(glint, CTX_A, DATA)
    response = client.get(f"/v2/images/{image.id}/file", headers={**PROJECT_A, "Range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(DATA)}"
    error_of(response)


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "items=0-5", "bytes=9-2", "bytes=-",
                                    "nonsense"])
def test_ranges_not_understood_are_ignored(client: TestClient, glint: app.Glint,
                                           header: str) -> None:
    image = add_image(glint, CTX_A, DATA)
    response = client.get(f"/v2/images/{image.id}/file", headers={**PROJECT_A, "Range": header})
    assert response.status_code == 200
    assert response.content == DATA


def test_byte_range_parsing() -> None:
    assert byte_range(None, 10) is None
    assert byte_range("bytes=2-4", 10) == (2, 4)
    assert byte_range("BYTES = 2 - ", 10) == (2, 9)


def test_deactivated_image_is_403_except_for_admins(client: TestClient,
                                                    glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, DATA)
    glint.images.set_status(CTX_A, image.id, states.DEACTIVATED)
    response = client.get(f"/v2/images/{image.id}/file", headers=PROJECT_A)
    assert response.status_code == 403
    assert "deactivated" in error_of(response)["message"]
    ranged = client.get(f"/v2/images/{image.id}/file", headers={**PROJECT_A, "Range": "bytes=0-1"})
    assert ranged.status_code == 403
    assert client.get(f"/v2/images/{image.id}/file", headers=ADMIN).content == DATA


def test_other_projects_image_data_is_404(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_B, DATA, visibility="private")
    assert client.get(f"/v2/images/{image.id}/file", headers=PROJECT_A).status_code == 404


def test_other_methods_are_405(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    response = client.post(f"/v2/images/{image.id}/file", headers=PROJECT_A, content=b"x")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, PUT"
