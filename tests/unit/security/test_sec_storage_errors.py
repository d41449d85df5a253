"""A full or read-only store answers as Glance does (413, 503), never 500, and says so once.

The filesystems are real (:mod:`tests.unit.security.filesystems`): a 1 MiB tmpfs fills up, a
read-only one refuses files. After a refusal the image is back to ``queued`` and the store
holds nothing of the write.
"""

from __future__ import annotations

import errno
import logging
import os
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from glint import app, errors
from glint.api.app import create_app
from glint.images import states
from glint.scripts import api_image_import
from glint.scripts.registry import Registry
from glint.stores.filesystem import FilesystemStore
from tests.unit.api.data_support import OCTET
from tests.unit.api.support import CTX_A, PROJECT_A, TestClient, add_image, error_of
from tests.unit.security import filesystems

DATA = os.urandom(2 * filesystems.SIZE)  # more than the full filesystem takes
SCRIPTS = Registry.of({"api_image_import": api_image_import})
FULL_MESSAGE = "Image storage media is full: No space left on device"


@pytest.fixture
def make_client(make_glint: Callable[..., app.Glint]) -> Iterator[Callable[..., Any]]:
    opened: list[TestClient] = []

    def make(store: pathlib.Path, staging: pathlib.Path) -> tuple[TestClient, app.Glint]:
        glint = make_glint(store=FilesystemStore(store), staging_path=staging,
                           registry=SCRIPTS)
        client = TestClient(create_app(glint))
        client.__enter__()
        opened.append(client)
        return client, glint

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def put(client: TestClient, image_id: str, what: str) -> Any:
    return client.put(f"/v2/images/{image_id}/{what}", content=DATA,
                      headers={**PROJECT_A, **OCTET})


def logged_once(caplog: pytest.LogCaptureFixture, text: str) -> None:
    """One warning names the failure; nothing at error level, no traceback."""
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelname for r in records] == ["WARNING"], [r.getMessage() for r in records]
    assert text in records[0].getMessage()
    assert records[0].exc_info is None


@pytest.mark.parametrize("what", ["file", "stage"])
def test_a_full_filesystem_is_413(make_client: Callable[..., Any], tmp_path: pathlib.Path,
                                  monkeypatch: pytest.MonkeyPatch,
                                  caplog: pytest.LogCaptureFixture, what: str) -> None:
    with filesystems.full(tmp_path / "full", monkeypatch) as point:
        store, staging = (point, tmp_path / "staging") if what == "file" else (
            tmp_path / "images", point)
        client, glint = make_client(store, staging)
        image = add_image(glint, CTX_A)
        caplog.clear()
        response = put(client, image.id, what)
        assert response.status_code == 413
        assert error_of(response)["message"] == FULL_MESSAGE
        logged_once(caplog, FULL_MESSAGE)
        assert glint.images.get(CTX_A, image.id).status == states.QUEUED
        assert os.listdir(point) == []  # no partial file, no temporary one
        if filesystems.mountable():  # a real tmpfs: the space the abort freed takes more
            small = client.put(f"/v2/images/{image.id}/{what}", content=b"fits",
                               headers={**PROJECT_A, **OCTET})
            assert small.status_code == 204


@pytest.mark.parametrize("what", ["file", "stage"])
def test_a_read_only_store_is_503(make_client: Callable[..., Any], tmp_path: pathlib.Path,
                                  caplog: pytest.LogCaptureFixture, what: str) -> None:
    (tmp_path / "ro").mkdir()
    with filesystems.read_only(tmp_path / "ro") as point:
        store, staging = (point, tmp_path / "staging") if what == "file" else (
            tmp_path / "images", point)
        client, glint = make_client(store, staging)
        image = add_image(glint, CTX_A)
        caplog.clear()
        response = put(client, image.id, what)
        assert response.status_code == 503
        message = error_of(response)["message"]
        assert message.startswith("Image storage media cannot be written: ")
        assert message.endswith(("Read-only file system", "Permission denied"))
        logged_once(caplog, message)
        assert glint.images.get(CTX_A, image.id).status == states.QUEUED
        assert os.listdir(point) == []


def test_an_import_to_a_full_store_fails_saying_so(make_client: Callable[..., Any],
                                                   tmp_path: pathlib.Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with filesystems.full(tmp_path / "full", monkeypatch) as point:
        client, glint = make_client(point, tmp_path / "staging")
        image = add_image(glint, CTX_A)
        assert put(client, image.id, "stage").status_code == 204
        response = client.post(f"/v2/images/{image.id}/import", headers=PROJECT_A,
                               json={"method": {"name": "glance-direct"}})
        assert response.status_code == 202
        [task] = glint.tasks.for_image(image.id)
        assert task.status == "failure"
        assert FULL_MESSAGE in task.message
        assert glint.images.get(CTX_A, image.id).status != states.ACTIVE
        assert os.listdir(point) == []


@pytest.mark.parametrize(("number", "kind", "status"), [
    (errno.ENOSPC, errors.StoreFull, 413), (errno.EDQUOT, errors.StoreFull, 413),
    (errno.EFBIG, errors.StoreFull, 413), (errno.EROFS, errors.StoreUnwritable, 503),
    (errno.EACCES, errors.StoreUnwritable, 503), (errno.EPERM, errors.StoreUnwritable, 503),
    (errno.EIO, errors.StoreError, None)])
def test_store_errors_by_errno(number: int, kind: type[errors.StoreError],
                               status: int | None) -> None:
    from glint.api import errors as api_errors

    error = errors.store_error(OSError(number, os.strerror(number)))
    assert type(error) is kind
    assert error.message.endswith(os.strerror(number))
    assert api_errors.status_of(error) == status  # an unknown failure stays unexpected (500)
