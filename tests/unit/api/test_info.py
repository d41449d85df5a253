"""``/v2/info/import``, ``/v2/info/stores`` and ``/v2/info/usage``."""

from __future__ import annotations

from collections.abc import Callable

import pydantic
import pytest

from glint import app, settings
from glint.images import states
from tests.unit.api.data_support import OCTET
from tests.unit.api.support import CTX_A, CTX_B, PROJECT_A, TestClient, add_image

MiB = 1024 * 1024


def test_import_methods_are_the_enabled_ones(make_client: Callable[..., TestClient]) -> None:
    client = make_client(enabled_import_methods=("web-download",))
    assert client.get("/v2/info/import", headers=PROJECT_A).json() == {"import-methods": {
        "description": "Import methods available.", "type": "array", "value": ["web-download"]}}
    created = client.post("/v2/images", json={"name": "x"}, headers=PROJECT_A)
    assert created.headers["OpenStack-image-import-methods"] == "web-download"


def test_methods_glint_does_not_run_are_refused_at_start() -> None:
    with pytest.raises(pydantic.ValidationError, match="enabled_import_methods"):
        settings.load(enabled_import_methods=("web-download", "copy-image"))


def test_stores_lists_the_one_store(client: TestClient) -> None:
    stores = client.get("/v2/info/stores", headers=PROJECT_A).json()["stores"]
    assert len(stores) == 1
    assert stores[0]["id"] == "memory" and stores[0]["default"] == "true"
    assert stores[0]["description"]


def test_usage_counts_the_callers_images(client: TestClient, glint: app.Glint) -> None:
    add_image(glint, CTX_A, b"x" * (3 * MiB + 5))
    add_image(glint, CTX_A, b"y" * MiB)
    add_image(glint, CTX_A)  # queued
    saving = add_image(glint, CTX_A)
    glint.images.set_status(CTX_A, saving.id, states.SAVING)
    staged = add_image(glint, CTX_A)
    client.put(f"/v2/images/{staged.id}/stage", content=b"z" * (2 * MiB),
               headers={**PROJECT_A, **OCTET})
    deleted = add_image(glint, CTX_A, b"w" * 10 * MiB)
    glint.images.delete(CTX_A, deleted.id)
    add_image(glint, CTX_B, b"v" * 10 * MiB)  # someone else's
    usage = client.get("/v2/info/usage", headers=PROJECT_A).json()["usage"]
    assert usage == {
        "image_size_total": {"usage": 4, "limit": -1},  # MiB, rounded down, as Glance
        "image_stage_total": {"usage": 2, "limit": -1},
        "image_count_total": {"usage": 5, "limit": -1},
        "image_count_uploading": {"usage": 2, "limit": -1},
    }
