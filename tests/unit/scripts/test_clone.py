"""The ``clone`` script end to end: task API → runner → script → store copy → checks."""

from __future__ import annotations

import errno
import hashlib
import os
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest

from glint import app, errors
from glint.context import RequestContext
from glint.db import models
from glint.stores import base as stores
from glint.stores.filesystem import FilesystemStore
from glint.stores.memory import MemoryStore, MemoryWriter
from tests.conftest import MakeGlint
from tests.unit.scripts.support import active_image, live_images, run_task

DATA = os.urandom(3 * 1024 * 1024 + 777)


class StreamingStore(stores.StoreBase):
    """A store with no ``copy`` of its own: clone streams the bytes through a writer."""

    name = "streaming"

    def __init__(self) -> None:
        self.inner = MemoryStore()

    def writer(self, image_id: str) -> MemoryWriter:
        return self.inner.writer(image_id)

    def read(self, location: str, offset: int = 0, length: int | None = None,
             chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        return self.inner.read(location, offset, length, chunk_size)

    def size(self, location: str) -> int:
        return self.inner.size(location)

    def delete(self, location: str) -> None:
        self.inner.delete(location)

    def local_path(self, location: str) -> pathlib.Path | None:
        return None

    def locations(self) -> Iterator[str]:
        return self.inner.locations()


def _clone(glint: app.Glint, ctx: RequestContext, image_id: str, **overrides: Any) -> models.Task:
    task_input: dict[str, Any] = {"image_id": image_id}
    if overrides:
        task_input["image_properties"] = overrides
    return run_task(glint, ctx, "clone", task_input)


def _add_property(glint: app.Glint, image_id: str, name: str, value: str) -> None:
    with glint.db.session() as session:
        image = session.get(models.Image, image_id)
        assert image is not None
        image.set_property(name, value)
        image.virtual_size = 10 * len(DATA)


def test_a_clone_has_the_sources_data_and_metadata_but_its_own_identity(
        make_glint: MakeGlint, ctx: RequestContext, admin_ctx: RequestContext) -> None:
    glint = make_glint()
    source = active_image(glint, admin_ctx, DATA, name="base", visibility="public",
                          os_hidden=True, min_disk=2, min_ram=512, tags=["a", "b"],
                          disk_format="qcow2", container_format="ovf",
                          os_distro="debian", hw_disk_bus="virtio")
    _add_property(glint, source.id, "os_glance_import_task", "internal")

    task = _clone(glint, ctx, source.id, name="my copy", hw_disk_bus="scsi")

    assert (task.status, task.message) == ("success", "")
    assert task.result is not None
    clone_id = task.result["image_id"]
    assert task.image_id == clone_id != source.id
    clone = glint.images.get(ctx, clone_id)
    original = glint.images.get(admin_ctx, source.id)
    assert (clone.status, clone.owner, clone.visibility) == ("active", "project-a", "shared")
    assert (clone.name, clone.os_hidden, clone.min_disk, clone.min_ram) == ("my copy", True, 2, 512)
    assert (clone.disk_format, clone.container_format) == ("qcow2", "ovf")
    assert [t.value for t in clone.tags] == ["a", "b"]
    assert clone.extra_properties == {"os_distro": "debian", "hw_disk_bus": "scsi"}
    assert (clone.size, clone.virtual_size) == (len(DATA), 10 * len(DATA))
    assert (clone.checksum, clone.os_hash_algo, clone.os_hash_value) == (
        original.checksum, original.os_hash_algo, original.os_hash_value)
    assert clone.created_at > original.created_at
    assert clone.location is not None and clone.location != original.location
    assert b"".join(glint.store.read(clone.location)) == DATA


def test_an_admin_clone_of_a_public_image_stays_public(make_glint: MakeGlint,
                                                       admin_ctx: RequestContext) -> None:
    glint = make_glint()
    source = active_image(glint, admin_ctx, DATA, visibility="public")
    task = _clone(glint, admin_ctx, source.id)
    assert task.status == "success", task.message
    assert task.result is not None
    assert glint.images.get(admin_ctx, task.result["image_id"]).visibility == "public"


def test_the_filesystem_store_copies_with_copy_file_range(
        make_glint: MakeGlint, ctx: RequestContext, tmp_path: pathlib.Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    store = FilesystemStore(tmp_path / "images")
    glint = make_glint(store=store)
    source = active_image(glint, ctx, DATA)
    calls: list[int] = []
    real = os.copy_file_range

    def spy(src: int, dst: int, count: int, *args: Any) -> int:
        copied = real(src, dst, count, *args)
        calls.append(copied)
        return copied

    monkeypatch.setattr(os, "copy_file_range", spy)

    task = _clone(glint, ctx, source.id)

    assert task.status == "success", task.message
    assert sum(calls) == len(DATA) and calls[-1] == 0
    assert task.result is not None
    clone = glint.images.get(ctx, task.result["image_id"])
    assert clone.location is not None
    assert (store.path / clone.location).read_bytes() == DATA
    assert sorted(os.listdir(store.path)) == sorted([source.location, clone.location])


def test_the_filesystem_store_falls_back_to_plain_copies(
        make_glint: MakeGlint, ctx: RequestContext, tmp_path: pathlib.Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    store = FilesystemStore(tmp_path / "images")
    glint = make_glint(store=store)
    source = active_image(glint, ctx, DATA)

    def unsupported(*args: Any) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", unsupported)

    task = _clone(glint, ctx, source.id)

    assert task.status == "success", task.message
    assert task.result is not None
    assert glint.images.get(ctx, task.result["image_id"]).checksum == hashlib.md5(DATA).hexdigest()


def test_the_store_copy_is_atomic(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FilesystemStore(tmp_path / "images")
    with store.writer("src") as writer:
        writer.write(DATA)
        location = writer.commit()

    def broken(*args: Any) -> int:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "copy_file_range", broken)
    with pytest.raises(errors.StoreError, match="Input/output error"):
        store.copy(location, "dst")
    assert os.listdir(store.path) == ["src"]  # no temporary file, no partial copy
    with pytest.raises(errors.StoreError, match="missing from the store"):
        store.copy("gone", "dst")


@pytest.mark.parametrize("store_kind", ["memory", "filesystem", "streaming"])
def test_a_source_whose_bytes_do_not_match_its_record_is_not_cloned(
        make_glint: MakeGlint, ctx: RequestContext, tmp_path: pathlib.Path,
        store_kind: str) -> None:
    store: Any = {"memory": MemoryStore, "streaming": StreamingStore,
                  "filesystem": lambda: FilesystemStore(tmp_path / "images")}[store_kind]()
    glint = make_glint(store=store)
    source = active_image(glint, ctx, DATA)
    assert source.location is not None
    damaged = DATA[:100] + b"X" + DATA[101:]
    if isinstance(store, FilesystemStore):
        (store.path / source.location).write_bytes(damaged)
    else:
        inner = store.inner if isinstance(store, StreamingStore) else store
        inner.blobs[source.location] = damaged

    task = _clone(glint, ctx, source.id)

    assert (task.status, task.message) == (
        "failure", f"The data of image {source.id} does not match its record "
                   "(checksum, os_hash_value differ); no clone was made")
    assert [i.id for i in live_images(glint)] == [source.id]
    assert list(glint.store.locations()) == [source.location]
    if isinstance(store, FilesystemStore):
        assert os.listdir(store.path) == [source.location]  # not even a temporary file
    assert task.image_id is not None  # the clone was made, then discarded
    with pytest.raises(errors.NotFound):
        glint.images.get(ctx, task.image_id)


def test_only_active_images_visible_to_the_caller_are_cloned(
        make_glint: MakeGlint, ctx: RequestContext, other_ctx: RequestContext) -> None:
    glint = make_glint()
    private = active_image(glint, ctx, DATA, visibility="private")
    queued = glint.images.create(ctx, {"name": "empty", "disk_format": "raw",
                                       "container_format": "bare"})

    hidden = _clone(glint, other_ctx, private.id)
    empty = _clone(glint, ctx, queued.id)

    assert (hidden.status, hidden.message) == (
        "failure", f"Cannot clone: No image found with ID {private.id}")
    assert (empty.status, empty.message) == (
        "failure", f"Cannot clone image {queued.id}: it is queued, and only active images "
                   "can be cloned")
    assert {i.id for i in live_images(glint)} == {private.id, queued.id}


@pytest.mark.parametrize(("overrides", "message"), [
    ({"status": "active"}, "image_properties: Attribute 'status' is read-only."),
    ({"os_glance_x": "1"}, "image_properties: Attribute 'os_glance_x' is reserved."),
    ({"min_ram": -1}, "Invalid value -1 for 'min_ram'"),
    ({"tags": "one"}, "Invalid value for 'tags'"),
    ({"custom": 5}, "Invalid value for property 'custom': must be a string"),
])
def test_impossible_overrides_are_refused_when_the_task_is_created(
        make_glint: MakeGlint, ctx: RequestContext, overrides: dict[str, Any],
        message: str) -> None:
    glint = make_glint()
    source = active_image(glint, ctx, DATA)
    with pytest.raises(errors.BadRequest) as raised:
        _clone(glint, ctx, source.id, **overrides)
    assert message in raised.value.message


def test_an_override_the_caller_may_not_set_fails_the_task(make_glint: MakeGlint,
                                                           ctx: RequestContext) -> None:
    glint = make_glint()
    source = active_image(glint, ctx, DATA)
    task = _clone(glint, ctx, source.id, visibility="public")
    assert (task.status, task.message) == (
        "failure", f"Could not create the clone of image {source.id}: You are not "
                   "authorized to complete publicize_image action.")
    assert [i.id for i in live_images(glint)] == [source.id]


def test_memory_store_copy(tmp_path: pathlib.Path) -> None:
    store = MemoryStore()
    assert isinstance(store, stores.CopyingStore)
    assert isinstance(FilesystemStore(tmp_path), stores.CopyingStore)
    assert not isinstance(StreamingStore(), stores.CopyingStore)
    with store.writer("a") as writer:
        writer.write(b"bytes")
        writer.commit()
    assert store.copy("a", "b") == "b"
    assert store.blobs == {"a": b"bytes", "b": b"bytes"}
    with pytest.raises(errors.StoreError):
        store.copy("missing", "c")
