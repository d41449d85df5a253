"""Multi-store (``enabled_backends``): the stores listing, uploads to a store, imports to
several stores, copy-image, deleting from one store, and Glance's answers to mistakes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import pydantic
import pytest

from glint import app, errors, settings
from glint.api.app import create_app
from glint.images import locations, states
from glint.imports import methods as imports
from glint.scripts import api_image_import
from glint.scripts.registry import Registry
from glint.stores.filesystem import FilesystemStore
from glint.stores.memory import MemoryStore
from glint.stores.multi import MultiStore
from tests.stores import FullStore
from tests.unit.api.data_support import OCTET
from tests.unit.api.import_support import import_
from tests.unit.api.support import ADMIN, CTX_A, PROJECT_A, TestClient, add_image, error_of

DATA = bytes(range(256)) * 1000
BACKENDS = {"fast": "memory", "cheap": "memory", "slow": "memory"}
METHODS = ("glance-direct", "web-download", "copy-image")


MakeClient = Callable[..., tuple[TestClient, dict[str, MemoryStore]]]


@pytest.fixture
def make_multi(make_glint: Callable[..., app.Glint]) -> Iterator[MakeClient]:
    """A client over a glint with the stores fast (default), cheap and slow."""
    opened: list[TestClient] = []

    def make(**stores: MemoryStore) -> tuple[TestClient, dict[str, MemoryStore]]:
        backends = {name: stores.get(name, MemoryStore()) for name in BACKENDS}
        glint = make_glint(store=MultiStore(backends, default="fast", types=BACKENDS),
                           registry=Registry.of({"api_image_import": api_image_import}),
                           enabled_backends=BACKENDS, default_backend="fast",
                           enabled_import_methods=METHODS)
        client = TestClient(create_app(glint))
        client.__enter__()
        opened.append(client)
        return client, backends

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def multi(make_multi: MakeClient) -> tuple[TestClient, dict[str, MemoryStore]]:
    return make_multi()


def create(client: TestClient) -> str:
    response = client.post("/v2/images", json={"disk_format": "raw", "container_format": "bare"},
                           headers=PROJECT_A)
    assert response.status_code == 201
    image_id: str = response.json()["id"]
    return image_id


def show(client: TestClient, image_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/v2/images/{image_id}", headers=PROJECT_A).json()
    return body


def holding(stores: dict[str, MemoryStore], image_id: str) -> list[str]:
    return sorted(name for name, store in stores.items() if store.blobs.get(image_id) == DATA)


def staged(client: TestClient) -> str:
    image_id = create(client)
    response = client.put(f"/v2/images/{image_id}/stage", content=DATA,
                          headers={**PROJECT_A, **OCTET})
    assert response.status_code == 204
    return image_id


def uploaded(client: TestClient, store: str | None = None) -> str:
    image_id = create(client)
    headers = {**PROJECT_A, **OCTET, **({"X-Image-Meta-Store": store} if store else {})}
    assert client.put(f"/v2/images/{image_id}/file", content=DATA,
                      headers=headers).status_code == 204
    return image_id


# -- settings --------------------------------------------------------------------------------

def test_settings_check_the_backends() -> None:
    with pytest.raises(pydantic.ValidationError, match="default_backend 'nope'"):
        settings.load(enabled_backends={"a": "filesystem"}, default_backend="nope")
    with pytest.raises(pydantic.ValidationError, match="backend_paths"):
        settings.load(enabled_backends={"a": "filesystem"}, backend_paths={"b": "/tmp/b"})
    with pytest.raises(pydantic.ValidationError, match="invalid store ids"):
        settings.load(enabled_backends={"a,b": "filesystem"})
    loaded = settings.load(enabled_backends={"a": "filesystem", "b": "filesystem"},
                           enabled_import_methods=METHODS, data_dir="/srv/glint")
    assert loaded.effective_default_backend == "a"
    assert str(loaded.effective_backend_path("b")) == "/srv/glint/images/b"


def test_filesystem_backends_are_built_from_the_settings(
        make_glint: Callable[..., app.Glint], tmp_path: Any) -> None:
    from glint.stores import multi

    built = multi.from_settings(settings.load(
        enabled_backends={"a": "filesystem", "b": "filesystem"}, default_backend="b",
        backend_paths={"a": tmp_path / "a"}, data_dir=tmp_path))
    assert (built.ids, built.default, built.multi) == (("a", "b"), "b", True)
    first, second = built.backend("a"), built.backend("b")
    assert isinstance(first, FilesystemStore) and isinstance(second, FilesystemStore)
    assert first.path == (tmp_path / "a").resolve()
    assert second.path == (tmp_path / "images" / "b").resolve()


# -- discovery -------------------------------------------------------------------------------

def test_info_stores_lists_the_backends_with_the_default_marked(multi: Any) -> None:
    client, _stores = multi
    stores = client.get("/v2/info/stores", headers=PROJECT_A).json()["stores"]
    assert [s["id"] for s in stores] == ["fast", "cheap", "slow"]
    assert [s.get("default") for s in stores] == ["true", None, None]
    detail = client.get("/v2/info/stores/detail", headers=ADMIN).json()["stores"]
    assert [(s["id"], s["type"]) for s in detail] == [(i, "memory") for i in BACKENDS]
    assert client.get("/v2/info/stores/detail", headers=PROJECT_A).status_code == 403


def test_versions_add_2_13_and_create_names_the_stores(multi: Any) -> None:
    client, _stores = multi
    versions = client.get("/versions").json()["versions"]
    assert [v["id"] for v in versions if v["status"] == "CURRENT"] == ["v2.13"]
    assert client.get("/v2.13/images", headers=PROJECT_A).status_code == 200
    response = client.post("/v2/images", json={}, headers=PROJECT_A)
    assert response.headers["OpenStack-image-store-ids"] == "fast,cheap,slow"
    assert "copy-image" in response.headers["OpenStack-image-import-methods"]
    assert "stores" not in response.json()  # no data yet, as Glance


def test_single_store_glints_show_no_stores(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, DATA)
    assert "stores" not in show(client, image.id)
    assert "OpenStack-image-store-ids" not in client.post(
        "/v2/images", json={}, headers=PROJECT_A).headers
    assert [(r.store, r.location) for r in glint.images.get(CTX_A, image.id).locations] == [
        (None, image.location)]
    assert client.get("/v2.13/images").status_code == 300


# -- upload and download ---------------------------------------------------------------------

def test_upload_goes_to_the_default_store_or_the_one_named(multi: Any) -> None:
    client, stores = multi
    default = uploaded(client)
    assert show(client, default)["stores"] == "fast" and holding(stores, default) == ["fast"]
    cheap = uploaded(client, "cheap")
    assert show(client, cheap)["stores"] == "cheap" and holding(stores, cheap) == ["cheap"]
    download = client.get(f"/v2/images/{cheap}/file", headers=PROJECT_A)
    assert download.status_code == 200 and download.content == DATA


def test_upload_to_an_unknown_store_is_400_and_leaves_the_image_queued(multi: Any) -> None:
    client, stores = multi
    image_id = create(client)
    response = client.put(f"/v2/images/{image_id}/file", content=DATA,
                          headers={**PROJECT_A, **OCTET, "X-Image-Meta-Store": "nope"})
    assert response.status_code == 400 and "nope" in error_of(response)["message"]
    assert show(client, image_id)["status"] == "queued"
    assert holding(stores, image_id) == []


# -- import ----------------------------------------------------------------------------------

def test_glance_direct_to_all_stores(multi: Any) -> None:
    client, stores = multi
    image_id = staged(client)
    assert import_(client, image_id, {"method": {"name": "glance-direct"},
                                      "all_stores": True}).status_code == 202
    image = show(client, image_id)
    assert (image["status"], image["stores"]) == ("active", "cheap,fast,slow")
    assert image[locations.IMPORTING] == "" and image[locations.FAILED] == ""
    assert image["checksum"] == hashlib.md5(DATA).hexdigest()
    assert holding(stores, image_id) == ["cheap", "fast", "slow"]
    assert client.get(f"/v2/images/{image_id}/file", headers=PROJECT_A).content == DATA


def test_import_to_named_stores_or_the_header_or_the_default(multi: Any) -> None:
    client, stores = multi
    named = staged(client)
    assert import_(client, named, {"method": {"name": "glance-direct"},
                                   "stores": ["slow", "cheap"]}).status_code == 202
    assert show(client, named)["stores"] == "cheap,slow"
    header = staged(client)
    assert import_(client, header, {"method": {"name": "glance-direct"}},
                   {"X-Image-Meta-Store": "slow"}).status_code == 202
    assert holding(stores, header) == ["slow"]
    default = staged(client)
    assert import_(client, default, {"method": {"name": "glance-direct"}}).status_code == 202
    assert show(client, default)["stores"] == "fast"


@pytest.mark.parametrize(("body", "headers", "status"), [
    ({"stores": ["fast", "nope"]}, {}, 409),
    ({}, {"X-Image-Meta-Store": "nope"}, 409),
    ({"stores": ["fast"]}, {"X-Image-Meta-Store": "fast"}, 400),
    ({"all_stores": True, "stores": ["fast"]}, {}, 400),
    ({"all_stores": True}, {"X-Image-Meta-Store": "fast"}, 400),
    ({"all_stores_must_succeed": "no"}, {}, 400),
])
def test_import_store_mistakes(multi: Any, body: dict[str, Any], headers: dict[str, str],
                               status: int) -> None:
    client, _stores = multi
    image_id = staged(client)
    response = import_(client, image_id, {"method": {"name": "glance-direct"}, **body}, headers)
    assert response.status_code == status
    error_of(response)
    assert show(client, image_id)["status"] == "uploading"


def test_one_store_failing_fails_the_import_when_all_must_succeed(
        make_multi: MakeClient) -> None:
    client, stores = make_multi(cheap=FullStore())
    image_id = staged(client)
    assert import_(client, image_id, {"method": {"name": "glance-direct"},
                                      "all_stores": True}).status_code == 202
    image = show(client, image_id)
    assert image["status"] == "queued" and "stores" not in image
    assert "cheap" in image[locations.FAILED].split(",")
    assert image[locations.IMPORTING] == ""
    assert holding(stores, image_id) == []
    assert imports.LOCK not in image


def test_a_failing_store_is_recorded_when_not_all_must_succeed(make_multi: MakeClient) -> None:
    client, stores = make_multi(cheap=FullStore())
    image_id = staged(client)
    assert import_(client, image_id, {"method": {"name": "glance-direct"}, "all_stores": True,
                                      "all_stores_must_succeed": False}).status_code == 202
    image = show(client, image_id)
    assert (image["status"], image["stores"]) == ("active", "fast,slow")
    assert (image[locations.IMPORTING], image[locations.FAILED]) == ("", "cheap")
    assert holding(stores, image_id) == ["fast", "slow"]


def test_the_first_store_failing_moves_on_to_the_next(make_multi: MakeClient) -> None:
    client, _stores = make_multi(fast=FullStore())
    image_id = staged(client)
    assert import_(client, image_id, {"method": {"name": "glance-direct"}, "all_stores": True,
                                      "all_stores_must_succeed": False}).status_code == 202
    image = show(client, image_id)
    assert (image["status"], image["stores"], image[locations.FAILED]) == (
        "active", "cheap,slow", "fast")
    assert client.get(f"/v2/images/{image_id}/file", headers=PROJECT_A).content == DATA


# -- download --------------------------------------------------------------------------------

def _in_all_stores(client: TestClient) -> str:
    image_id = staged(client)
    assert import_(client, image_id, {"method": {"name": "glance-direct"},
                                      "all_stores": True}).status_code == 202
    assert show(client, image_id)["stores"] == "cheap,fast,slow"
    return image_id


def test_a_download_reads_another_copy_when_a_store_lost_its_own(
        multi: Any, caplog: pytest.LogCaptureFixture) -> None:
    client, stores = multi
    image_id = _in_all_stores(client)
    del stores["fast"].blobs[image_id]  # the default store, read first
    response = client.get(f"/v2/images/{image_id}/file", headers=PROJECT_A)
    assert (response.status_code, response.content == DATA) == (200, True)
    assert "from store fast" in caplog.text and "reading another copy" in caplog.text
    del stores["cheap"].blobs[image_id]
    response = client.get(f"/v2/images/{image_id}/file",
                          headers={**PROJECT_A, "Range": "bytes=10-19"})
    assert (response.status_code, response.content) == (206, DATA[10:20])


def test_a_download_with_no_readable_copy_is_an_error(multi: Any) -> None:
    client, stores = multi
    image_id = _in_all_stores(client)
    for store in stores.values():
        del store.blobs[image_id]
    # The last store's error, as with one store (the API answers 500: test_sendfile.py).
    with pytest.raises(errors.StoreError, match="missing from the store"):
        client.get(f"/v2/images/{image_id}/file", headers=PROJECT_A)


# -- copy-image ------------------------------------------------------------------------------

def test_copy_image_copies_to_the_stores_missing_it(multi: Any) -> None:
    client, stores = multi
    image_id = uploaded(client)
    response = import_(client, image_id, {"method": {"name": "copy-image"}, "all_stores": True,
                                          "all_stores_must_succeed": False}, ADMIN)
    assert response.status_code == 202
    image = show(client, image_id)
    assert (image["status"], image["stores"]) == ("active", "cheap,fast,slow")
    assert (image[locations.IMPORTING], image[locations.FAILED]) == ("", "")
    assert holding(stores, image_id) == ["cheap", "fast", "slow"]
    tasks = client.get(f"/v2/images/{image_id}/tasks", headers=PROJECT_A).json()["tasks"]
    assert [t["status"] for t in tasks] == ["success"]
    assert tasks[0]["input"]["backend"] == ["cheap", "slow"]  # fast had it already
    # Everywhere already: accepted, nothing to do.
    again = import_(client, image_id, {"method": {"name": "copy-image"}, "all_stores": True},
                    ADMIN)
    assert again.status_code == 202
    assert len(client.get(f"/v2/images/{image_id}/tasks", headers=PROJECT_A).json()["tasks"]) == 1


def test_copy_image_is_for_admins_and_active_images(multi: Any) -> None:
    client, _stores = multi
    image_id = uploaded(client)
    response = import_(client, image_id, {"method": {"name": "copy-image"}, "all_stores": True})
    assert response.status_code == 403
    queued = create(client)
    response = import_(client, queued, {"method": {"name": "copy-image"}, "all_stores": True},
                       ADMIN)
    assert response.status_code == 409 and "active" in error_of(response)["message"]


def test_a_failed_copy_is_reported_and_the_image_stays_active(make_multi: MakeClient) -> None:
    client, stores = make_multi(cheap=FullStore())
    image_id = uploaded(client)
    assert import_(client, image_id, {"method": {"name": "copy-image"}, "all_stores": True,
                                      "all_stores_must_succeed": False},
                   ADMIN).status_code == 202
    image = show(client, image_id)
    assert (image["status"], image["stores"], image[locations.FAILED]) == (
        "active", "fast,slow", "cheap")
    # All must succeed: the copies this import made are undone.
    other = uploaded(client)
    assert import_(client, other, {"method": {"name": "copy-image"}, "stores": ["slow", "cheap"]},
                   ADMIN).status_code == 202
    image = show(client, other)
    assert (image["status"], image["stores"]) == ("active", "fast")
    assert holding(stores, other) == ["fast"]


def test_copy_image_needs_multi_store() -> None:
    with pytest.raises(pydantic.ValidationError, match="copy-image"):
        settings.load(enabled_import_methods=METHODS)


# -- deleting --------------------------------------------------------------------------------

def test_delete_from_one_store(multi: Any) -> None:
    client, stores = multi
    image_id = staged(client)
    import_(client, image_id, {"method": {"name": "glance-direct"}, "stores": ["fast", "cheap"]})
    response = client.delete(f"/v2/stores/fast/{image_id}", headers=ADMIN)
    assert response.status_code == 204
    assert show(client, image_id)["stores"] == "cheap"
    assert holding(stores, image_id) == ["cheap"]
    assert client.get(f"/v2/images/{image_id}/file", headers=PROJECT_A).content == DATA
    last = client.delete(f"/v2/stores/cheap/{image_id}", headers=ADMIN)
    assert last.status_code == 403 and "only store" in error_of(last)["message"]


def test_delete_from_store_answers(multi: Any) -> None:
    client, _stores = multi
    image_id = staged(client)
    import_(client, image_id, {"method": {"name": "glance-direct"}, "stores": ["fast", "cheap"]})
    assert client.delete(f"/v2/stores/slow/{image_id}", headers=ADMIN).status_code == 404
    assert client.delete(f"/v2/stores/nope/{image_id}", headers=ADMIN).status_code == 409
    assert client.delete(f"/v2/stores/fast/{image_id}", headers=PROJECT_A).status_code == 403
    missing = "00000000-0000-0000-0000-000000000000"
    assert client.delete(f"/v2/stores/fast/{missing}", headers=ADMIN).status_code == 404
    queued = create(client)
    assert client.delete(f"/v2/stores/fast/{queued}", headers=ADMIN).status_code == 409


def test_delete_from_store_is_404_without_multi_store(client: TestClient,
                                                      glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, DATA)
    response = client.delete(f"/v2/stores/memory/{image.id}", headers=ADMIN)
    assert response.status_code == 404


def test_deleting_the_image_removes_it_from_every_store(multi: Any) -> None:
    client, stores = multi
    image_id = staged(client)
    import_(client, image_id, {"method": {"name": "glance-direct"}, "all_stores": True})
    assert holding(stores, image_id) == ["cheap", "fast", "slow"]
    assert client.delete(f"/v2/images/{image_id}", headers=PROJECT_A).status_code == 204
    assert all(not store.blobs for store in stores.values())
    assert states.DELETED == "deleted"
