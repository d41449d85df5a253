"""``PUT /v2/images/{id}/stage`` and the staging area's hygiene."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

from glint import app
from glint.images import staging, states
from tests.unit.api.data_support import OCTET, staged_files, stored
from tests.unit.api.support import CTX_A, PROJECT_A, PROJECT_B, TestClient, add_image, error_of

DATA = b"staged bytes " * 1000


def stage(client: TestClient, image_id: str, data: bytes = DATA,
          headers: dict[str, str] | None = None) -> object:
    return client.put(f"/v2/images/{image_id}/stage", content=data,
                      headers={**PROJECT_A, **OCTET, **(headers or {})})


def staged_path(glint: app.Glint, image_id: str) -> pathlib.Path:
    return pathlib.Path(glint.settings.effective_staging_path) / image_id


def test_stage_keeps_the_data_and_marks_the_image_uploading(client: TestClient,
                                                            glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    response = stage(client, image.id)
    assert response.status_code == 204
    got = glint.images.get(CTX_A, image.id)
    assert (got.status, got.size, got.checksum, got.location) == (states.UPLOADING, len(DATA),
                                                                  None, None)
    assert staged_path(glint, image.id).read_bytes() == DATA
    assert staged_files(glint) == [image.id]  # no temporary file left
    assert stored(glint) == {}
    shown = client.get(f"/v2/images/{image.id}", headers=PROJECT_A).json()
    assert shown["status"] == "uploading"
    assert "os_glance_stage_host" not in shown


def test_staging_needs_no_formats(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, disk_format=None, container_format=None)
    assert stage(client, image.id).status_code == 204


def test_staging_twice_is_409(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    stage(client, image.id)
    response = stage(client, image.id, b"other")
    assert response.status_code == 409
    assert "staged" in error_of(response)["message"]
    assert staged_path(glint, image.id).read_bytes() == DATA


def test_active_image_is_409(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, b"data")
    assert stage(client, image.id).status_code == 409
    assert staged_files(glint) == []


def test_not_served_without_glance_direct(make_client: Callable[..., TestClient]) -> None:
    client = make_client(enabled_import_methods=("web-download",))
    image = client.post("/v2/images", json={"disk_format": "raw", "container_format": "bare"},
                        headers=PROJECT_A).json()
    response = stage(client, image["id"])
    assert response.status_code == 404
    assert "glance-direct" in error_of(response)["message"]
    assert client.get(f"/v2/images/{image['id']}", headers=PROJECT_A).json()["status"] == "queued"


def test_wrong_content_type_is_415(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    response = stage(client, image.id, headers={"Content-Type": "application/json"})
    assert response.status_code == 415
    assert glint.images.get(CTX_A, image.id).status == states.QUEUED


def test_other_project_is_403(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, visibility="public")
    response = client.put(f"/v2/images/{image.id}/stage", content=DATA,
                          headers={**PROJECT_B, **OCTET})
    assert response.status_code == 403
    assert glint.images.get(CTX_A, image.id).status == states.QUEUED
    assert staged_files(glint) == []


def test_size_cap_is_413_and_nothing_is_staged(make_glint: Callable[..., app.Glint]) -> None:
    from glint.api.app import create_app

    glint = make_glint(image_size_cap=100)
    image = add_image(glint, CTX_A)
    with TestClient(create_app(glint)) as client:
        response = stage(client, image.id, iter([DATA[:60], DATA[60:200]]))
    assert response.status_code == 413
    got = glint.images.get(CTX_A, image.id)
    assert (got.status, got.size) == (states.QUEUED, None)
    assert staged_files(glint) == []


def test_size_mismatch_is_400_and_nothing_is_staged(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    response = stage(client, image.id, headers={"x-openstack-image-size": "5"})
    assert response.status_code == 400
    assert glint.images.get(CTX_A, image.id).status == states.QUEUED
    assert staged_files(glint) == []


def test_deleting_the_image_removes_staged_data(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    stage(client, image.id)
    assert client.delete(f"/v2/images/{image.id}", headers=PROJECT_A).status_code == 204
    assert staged_files(glint) == []


def test_start_up_removes_residue_of_images_that_are_gone(glint: app.Glint) -> None:
    wanted = add_image(glint, CTX_A)
    glint.images.set_status(CTX_A, wanted.id, states.UPLOADING)
    deleted = add_image(glint, CTX_A)
    reverted = add_image(glint, CTX_A)  # queued: an import failed and left its file
    area = glint.images.staging
    for key in (wanted.id, deleted.id, reverted.id, "11111111-1111-1111-1111-111111111111"):
        with area.writer(key) as writer:
            writer.write(b"x")
            writer.commit()
    area.writer("22222222-2222-2222-2222-222222222222").write(b"unfinished")  # a crash mid-write
    glint.images.delete(CTX_A, deleted.id)  # removes its own file...
    with area.writer(deleted.id) as writer:  # ...so put one back, as a crash would leave it
        writer.write(b"x")
        writer.commit()
    assert staging.remove_residue(glint.db, area) == 4
    assert staged_files(glint) == [wanted.id]
    glint.start()  # start-up does it too (nothing left to do now)
    assert staged_files(glint) == [wanted.id]
