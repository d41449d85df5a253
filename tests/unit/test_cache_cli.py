"""``glint cache list|queue|delete|clear|prune``, with click's CliRunner on a migrated SQLite
database and the filesystem store under the working directory."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator

import pytest

from glint import app
from glint import settings as settings_mod
from glint.context import RequestContext
from tests.unit.api.support import add_image
from tests.unit.test_cli import run, workdir  # noqa: F401  (workdir is a fixture)

CTX = RequestContext(user_id="user-a", project_id="project-a", roles=("member",))
ON = {"GLINT_IMAGE_CACHE_ENABLED": "true"}


@pytest.fixture
def glint(workdir: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[app.Glint]:  # noqa: F811
    monkeypatch.setenv("GLINT_IMAGE_CACHE_ENABLED", "true")
    assert run("db", "upgrade").exit_code == 0
    built = app.build(settings_mod.load())
    yield built
    built.close(timeout=5)


def test_queue_list_delete_clear(glint: app.Glint) -> None:
    image = add_image(glint, CTX, os.urandom(5000))
    assert run("cache", "list").output == "no cached images\nnothing queued\n"
    queued = run("cache", "queue", image.id)
    assert queued.exit_code == 0 and "success" in queued.output, queued.output
    assert "cached or queued already" in run("cache", "queue", image.id).output
    listed = run("cache", "list").output.splitlines()
    assert listed[0].split() == ["IMAGE", "SIZE", "HITS", "LAST", "ACCESSED", "CACHED"]
    assert listed[1].split()[:3] == [image.id, "5000", "0"]
    assert run("cache", "delete", image.id).output == f"image {image.id}: removed\n"
    assert run("cache", "delete", image.id).output == f"image {image.id}: not cached\n"
    assert run("cache", "queue", "no-such-image").exit_code == 1
    run("cache", "queue", image.id)
    assert glint.cache is not None
    glint.cache.queue("another")
    cleared = run("cache", "clear")
    assert cleared.output == "removed 1 cached image, 1 queued image\n"


def test_prune_removes_deleted_images(glint: app.Glint) -> None:
    image = add_image(glint, CTX, os.urandom(5000))
    run("cache", "queue", image.id)
    assert run("cache", "prune").output == "removed 0 cached images\n"
    glint.images.delete(CTX, image.id)
    assert run("cache", "prune").output == "removed 1 cached image\n"


def test_commands_say_when_the_cache_is_off(workdir: pathlib.Path,  # noqa: F811
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLINT_IMAGE_CACHE_ENABLED", "false")
    result = run("cache", "list")
    assert result.exit_code == 1 and "the image cache is off" in result.output
