"""The image cache through the API: downloads that fill and hit it, ``/v2/cache``, prefetch."""

from __future__ import annotations

import hashlib
import os
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from glint import app
from glint.api.app import create_app
from glint.cache import pruner
from glint.cache.fill import Expected
from glint.stores.memory import MemoryStore
from tests.unit.api.support import ADMIN, CTX_A, PROJECT_A, TestClient, add_image, error_of

DATA = os.urandom(200_000)


class CountingStore(MemoryStore):
    """The memory store, counting the reads of image data (the object store's downloads)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def read(self, location: str, offset: int = 0, length: int | None = None,
             chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        self.reads += 1
        return super().read(location, offset, length, chunk_size)


@pytest.fixture
def store() -> CountingStore:
    return CountingStore()


@pytest.fixture
def glint(make_glint: Callable[..., app.Glint], store: CountingStore,
          tmp_path: pathlib.Path) -> app.Glint:
    return make_glint(store=store, image_cache_enabled=True,
                      image_cache_dir=tmp_path / "image-cache")


@pytest.fixture
def client(glint: app.Glint) -> Iterator[TestClient]:
    with TestClient(create_app(glint)) as test_client:
        yield test_client


def download(client: TestClient, image_id: str, **headers: str) -> Any:
    return client.get(f"/v2/images/{image_id}/file", headers={**PROJECT_A, **headers})


def test_a_download_fills_the_cache_and_the_next_one_reads_it(
        client: TestClient, glint: app.Glint, store: CountingStore) -> None:
    image = add_image(glint, CTX_A, DATA)
    assert download(client, image.id).content == DATA
    assert store.reads == 1
    first = client.get("/v2/cache", headers=ADMIN).json()["cached_images"]
    assert [(e["image_id"], e["size"], e["hits"]) for e in first] == [(image.id, len(DATA), 0)]
    second = download(client, image.id)
    assert second.content == DATA
    assert second.headers["content-md5"] == hashlib.md5(DATA).hexdigest()
    ranged = download(client, image.id, Range="bytes=100-199")
    assert ranged.status_code == 206 and ranged.content == DATA[100:200]
    assert store.reads == 1  # both from the cache
    [entry] = client.get("/v2/cache", headers=ADMIN).json()["cached_images"]
    assert entry["hits"] == 2


def test_a_range_download_does_not_fill(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, DATA)
    assert download(client, image.id, Range="bytes=0-9").content == DATA[:10]
    assert glint.cache is not None and glint.cache.entries() == []


def test_a_second_first_download_reads_from_the_store_while_one_fills(
        client: TestClient, glint: app.Glint, store: CountingStore) -> None:
    image = add_image(glint, CTX_A, DATA)
    assert glint.cache is not None
    under_way = glint.cache.fill(Expected.of(image))  # as a concurrent first download
    assert under_way is not None
    assert download(client, image.id).content == DATA
    assert glint.cache.entries() == [] and store.reads == 1
    under_way.abort()


def test_a_corrupted_cached_copy_is_discarded_and_served_from_the_store(
        client: TestClient, glint: app.Glint, store: CountingStore) -> None:
    image = add_image(glint, CTX_A, DATA)
    download(client, image.id)
    assert glint.cache is not None
    path = glint.cache.directory / image.id
    path.write_bytes(b"x" * len(DATA))
    assert download(client, image.id).content == DATA
    assert store.reads == 2  # discarded, served from the store, and filled again
    assert download(client, image.id).content == DATA and store.reads == 2


def test_a_deleted_image_is_not_served_and_its_copy_pruned(
        client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, DATA)
    download(client, image.id)
    assert client.delete(f"/v2/images/{image.id}", headers=PROJECT_A).status_code == 204
    assert download(client, image.id).status_code == 404
    assert glint.cache is not None and glint.cache.cached(image.id)
    assert pruner.prune(glint.cache, glint.db) == 1
    assert not (glint.cache.directory / image.id).exists()


def test_a_deactivated_image_is_not_served_from_the_cache(
        client: TestClient, glint: app.Glint, store: CountingStore) -> None:
    image = add_image(glint, CTX_A, DATA)
    download(client, image.id)
    client.post(f"/v2/images/{image.id}/actions/deactivate", headers=ADMIN)
    assert download(client, image.id).status_code == 403
    admin = client.get(f"/v2/images/{image.id}/file", headers=ADMIN)
    assert admin.content == DATA and store.reads == 2  # from the store
    assert glint.cache is not None and pruner.prune(glint.cache, glint.db) == 1


def test_the_cache_api_cycle(client: TestClient, glint: app.Glint) -> None:
    """What tempest's test_image_caching does."""
    assert client.get("/v2/cache", headers=PROJECT_A).status_code == 403
    assert client.get("/v2/cache", headers=ADMIN).json() == {"cached_images": [],
                                                             "queued_images": []}
    assert client.put("/v2/cache/no-such-image", headers=ADMIN).status_code == 404
    queued = add_image(glint, CTX_A)
    assert client.put(f"/v2/cache/{queued.id}", headers=ADMIN).status_code == 400
    image = add_image(glint, CTX_A, DATA)
    assert client.put(f"/v2/cache/{image.id}", headers=ADMIN).status_code == 202
    listing = client.get("/v2/cache", headers=ADMIN).json()  # the inline executor ran it
    assert [e["image_id"] for e in listing["cached_images"]] == [image.id]
    assert listing["queued_images"] == []
    [task] = client.get("/v2/tasks?type=cache_prefetch", headers=ADMIN).json()["tasks"]
    assert task["status"] == "success"
    assert client.delete("/v2/cache", headers=ADMIN).status_code == 204
    assert client.get("/v2/cache", headers=ADMIN).json() == {"cached_images": [],
                                                             "queued_images": []}
    bad = client.delete("/v2/cache", headers={**ADMIN, "x-image-cache-clear-target": "x"})
    assert bad.status_code == 400
    error_of(bad)


def test_clear_targets_and_delete_one(client: TestClient, glint: app.Glint) -> None:
    assert glint.cache is not None
    image = add_image(glint, CTX_A, DATA)
    download(client, image.id)
    glint.cache.queue("other")
    queue_only = {**ADMIN, "x-image-cache-clear-target": "queue"}
    assert client.delete("/v2/cache", headers=queue_only).status_code == 204
    assert glint.cache.queued() == [] and glint.cache.cached(image.id)
    assert client.delete(f"/v2/cache/{image.id}", headers=PROJECT_A).status_code == 403
    assert client.delete(f"/v2/cache/{image.id}", headers=ADMIN).status_code == 204
    assert not glint.cache.cached(image.id)


def test_a_prefetch_dequeued_before_it_runs_does_nothing(glint: app.Glint) -> None:
    from glint.scripts import cache_prefetch

    assert glint.cache is not None
    image = add_image(glint, CTX_A, DATA)
    task = glint.tasks.create(CTX_A, "cache_prefetch", {"image_id": image.id})
    assert glint.tasks.row(task.id).result == {"image_id": image.id, "cached": False}
    assert cache_prefetch.DESCRIPTION


def test_no_cache_api_without_a_cache(make_glint: Callable[..., app.Glint]) -> None:
    with TestClient(create_app(make_glint())) as client:
        assert client.get("/v2/cache", headers=ADMIN).status_code == 404


def test_the_openapi_document_has_the_cache_api_when_served(glint: app.Glint,
                                                            client: TestClient) -> None:
    from tests.unit.api import openapi_support

    doc = client.get("/openapi.json").json()
    served = openapi_support.served(create_app(glint).routes)
    assert served == openapi_support.documented(doc)
    assert {path for _method, path in served if path.startswith("/v2/cache")}


def test_a_prefetch_takes_over_a_fill_that_stalled(make_glint: Callable[..., app.Glint],
                                                   store: CountingStore,
                                                   tmp_path: pathlib.Path) -> None:
    """What a re-run after a lost worker finds: its own (or a download's) dead fill."""
    glint = make_glint(store=store, image_cache_enabled=True, image_cache_stall_time=0.3,
                       image_cache_dir=tmp_path / "image-cache")
    image = add_image(glint, CTX_A, DATA)
    assert glint.cache is not None
    dead = glint.cache.fill(Expected.of(image))
    assert dead is not None
    dead.write(DATA[:1000])  # then its process died
    with TestClient(create_app(glint)) as client:
        assert client.put(f"/v2/cache/{image.id}", headers=ADMIN).status_code == 202
        listing = client.get("/v2/cache", headers=ADMIN).json()
    assert [e["image_id"] for e in listing["cached_images"]] == [image.id]
    assert not dead.commit()


def test_a_fill_reads_another_copy_when_the_first_store_lost_its_own() -> None:
    from glint.api import cached_download

    lost, holding = MemoryStore(), MemoryStore()
    with holding.writer("image") as writer:
        writer.write(DATA)
        location = writer.commit()
    store_id, chunks = cached_download.first_readable(
        [("fast", lost, location), ("cheap", holding, location)], len(DATA))
    assert store_id == "cheap" and b"".join(chunks) == DATA
