"""``require_image_format_match``: an upload whose bytes are not its ``disk_format`` is 415.

On (the default, as in Glance), the data is inspected as it streams into the store and refused
before the store write commits: the image is back to queued with nothing stored. Off, the
bytes are stored as sent.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest

from glint import app
from glint.api.app import create_app
from glint.images import states
from glint.scripts.registry import Registry
from tests.unit.api.data_support import OCTET, stored
from tests.unit.api.support import CTX_A, PROJECT_A, Echo, TestClient, add_image, error_of

RAW = bytes(range(256)) * 2048  # 512 KiB no inspector recognises
VIRTUAL_SIZE = 1 << 30


def qcow2_header(virtual_size: int = VIRTUAL_SIZE, backing_file_offset: int = 0) -> bytes:
    """A qcow2 (version 2) image with no clusters: enough for the format inspector."""
    header = (b"QFI\xfb" + struct.pack(">IQI", 2, backing_file_offset, 0)
              + struct.pack(">IQ", 16, virtual_size))
    return header.ljust(64 * 1024, b"\0")


def _put(client: TestClient, image_id: str, data: bytes) -> Any:
    return client.put(f"/v2/images/{image_id}/file", content=data,
                      headers={**PROJECT_A, **OCTET})


def _assert_queued_and_empty(glint: app.Glint, image_id: str) -> None:
    image = glint.images.get(CTX_A, image_id)
    assert (image.status, image.size, image.location) == (states.QUEUED, None, None)
    assert stored(glint) == {}


@pytest.mark.parametrize(("disk_format", "data", "detected"), [
    ("qcow2", RAW, "raw"),
    ("vmdk", RAW, "raw"),
    ("raw", qcow2_header(), "qcow2"),
    ("vhd", qcow2_header(), "qcow2"),
])
def test_a_mismatch_is_refused_and_nothing_is_stored(
        client: TestClient, glint: app.Glint, disk_format: str, data: bytes,
        detected: str) -> None:
    image = add_image(glint, CTX_A, disk_format=disk_format)
    response = _put(client, image.id, data)
    assert response.status_code == 415
    message = error_of(response)["message"]
    assert f"disk_format is '{disk_format}' but the data is {detected}" in message
    _assert_queued_and_empty(glint, image.id)
    # The image takes data again: the right bytes this time.
    right = RAW if detected != "raw" else qcow2_header()
    if disk_format in ("qcow2", "raw"):
        assert _put(client, image.id, right).status_code == 204


@pytest.mark.parametrize(("disk_format", "data"), [
    ("raw", RAW),
    ("qcow2", qcow2_header()),
    ("aki", RAW),  # no inspector for these: the bytes must look raw
    ("iso", b"\0" * 32768 + b"\x01CD001\x01" + b"\0" * 32768),
])
def test_a_match_is_stored(client: TestClient, glint: app.Glint, disk_format: str,
                           data: bytes) -> None:
    container = "aki" if disk_format == "aki" else "bare"
    image = add_image(glint, CTX_A, disk_format=disk_format, container_format=container)
    response = _put(client, image.id, data)
    assert response.status_code == 204, response.text
    assert glint.images.get(CTX_A, image.id).status == states.ACTIVE


def test_the_inspectors_virtual_size_is_recorded(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, disk_format="qcow2")
    assert _put(client, image.id, qcow2_header()).status_code == 204
    assert glint.images.get(CTX_A, image.id).virtual_size == VIRTUAL_SIZE


def test_an_unsafe_image_is_refused(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, disk_format="qcow2")
    response = _put(client, image.id, qcow2_header(backing_file_offset=512))
    assert response.status_code == 415
    assert "safety checks" in error_of(response)["message"]
    _assert_queued_and_empty(glint, image.id)


def test_other_containers_are_not_inspected(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, disk_format="qcow2", container_format="ova")
    assert _put(client, image.id, RAW).status_code == 204
    assert list(stored(glint).values()) == [RAW]


def test_off_the_bytes_are_stored_as_sent(make_glint: Callable[..., app.Glint]) -> None:
    glint = make_glint(registry=Registry.of({"echo": Echo}), require_image_format_match=False)
    with TestClient(create_app(glint)) as client:
        image = add_image(glint, CTX_A, disk_format="qcow2")
        assert _put(client, image.id, RAW).status_code == 204
    got = glint.images.get(CTX_A, image.id)
    assert (got.status, got.size, got.virtual_size) == (states.ACTIVE, len(RAW), None)
    assert list(stored(glint).values()) == [RAW]
