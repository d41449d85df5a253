"""A test kit for script authors: an in-memory glint to run a script's ``main`` in.

:class:`ScriptHarness` builds a whole glint the way ``glint serve`` does, with the parts a test
wants: a SQLite database with the schema in a scratch directory, the memory store, the memory
notifier, the inline executor (a task runs before :meth:`ScriptHarness.run` returns) and a
request context to act as. A script runs through the real task service and runner, so its
input schema, ``validate``, result and failure handling are exactly what a server applies::

    import glint_verify
    from glint.testing import ScriptHarness

    def test_verify_passes() -> None:
        with ScriptHarness() as glint:
            image = glint.create_image(data=b"some bytes", name="demo")
            task = glint.run(glint_verify, {"image_id": image["id"]})
            assert task["status"] == "success", task["message"]

With pytest, put ``pytest_plugins = ["glint.testing"]`` in your ``conftest.py`` and take the
``script_harness`` fixture instead (it cleans up after the test). This module needs pytest
(``pip install 'glint[test]'``).
"""

from __future__ import annotations

import pathlib
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any

import pytest
import sqlalchemy as sa

from glint import app, datapath
from glint import settings as settings_mod
from glint.context import RequestContext
from glint.db import models
from glint.images import locations as image_locations
from glint.images import service as images
from glint.images import states as image_states
from glint.images import views as image_views
from glint.notifiers.memory import MemoryNotifier
from glint.scripts import registry as registry_mod
from glint.stores import multi
from glint.stores.base import Store
from glint.stores.memory import MemoryStore
from glint.tasks import views as task_views

__all__ = ["ScriptHarness", "script_harness"]

DEFAULT_CONTEXT = RequestContext(user_id="test-user", project_id="test-project",
                                 roles=("member", "reader"))


class ScriptHarness:
    """An in-process glint for testing scripts; close it (or use ``with``) when done.

    ``directory``: where the SQLite database goes (a fresh temporary directory, removed on
    close, when not given). ``scripts``: task type → script object, served besides the
    installed scripts (``glint.task_scripts`` entry points). ``store``: another store (say a
    ``FilesystemStore``) instead of the memory store. ``stores``: several stores by id instead
    (multi-store, the first the default), for scripts that must find an image's bytes in
    whichever store holds them. ``ctx``: who creates images and tasks by default. Other
    keyword arguments are settings (``hashing_algorithm="sha256"``...).
    """

    def __init__(self, directory: pathlib.Path | None = None, *,
                 scripts: Mapping[str, Any] | None = None, store: Store | None = None,
                 stores: Mapping[str, Store] | None = None,
                 ctx: RequestContext | None = None, **settings: Any) -> None:
        self._temporary = directory is None
        self.directory = pathlib.Path(directory or tempfile.mkdtemp(prefix="glint-testing-"))
        if stores:
            settings.setdefault("enabled_backends", {i: s.name for i, s in stores.items()})
            store = multi.MultiStore(stores, default=next(iter(stores)),
                                     types=settings["enabled_backends"])
        self.settings = settings_mod.Settings(**{
            "data_dir": self.directory / "data",
            "database_url": f"sqlite:///{self.directory / 'glint.db'}", **settings})
        self.store: Store = store if store is not None else MemoryStore()
        self.notifier = MemoryNotifier()
        self.ctx = ctx or DEFAULT_CONTEXT
        self._scripts = dict(scripts or {})
        self.glint = self._build()

    # -- running scripts -------------------------------------------------------------------

    def run(self, script: str | Any, task_input: Mapping[str, Any], *,
            ctx: RequestContext | None = None) -> dict[str, Any]:
        """Create a task and run it to its end; return it as ``GET /v2/tasks/{id}`` shows it.

        ``script`` is a task type, or a script object (a module with ``main``): one that is
        not served yet is added under its module's last name. Input the script refuses at
        create time raises :class:`glint.errors.BadRequest`, as the API would answer 400.
        """
        task_type = self._type_of(script)  # first: serving a new script rebuilds self.glint
        task = self.glint.tasks.create(ctx or self.ctx, task_type, dict(task_input))
        return self.task(task.id, ctx=ctx)

    def task(self, task_id: str, *, ctx: RequestContext | None = None) -> dict[str, Any]:
        return task_views.full(self.glint.tasks.get(ctx or self.ctx, task_id))

    # -- images ------------------------------------------------------------------------------

    def create_image(self, data: bytes | None = None, *, ctx: RequestContext | None = None,
                     store: str | None = None, **values: Any) -> dict[str, Any]:
        """An image made as ``POST /v2/images`` makes one (``values`` are its attributes and
        properties; ``raw``/``bare`` unless given), then, with ``data``, uploaded (to the store
        of id ``store``, or the default one): active, with its size and checksums computed as
        glint computes them."""
        ctx = ctx or self.ctx
        values = {"name": "test-image", "disk_format": "raw", "container_format": "bare",
                  **values}
        image = self.glint.images.create(ctx, values)
        if data is not None:
            self._upload(ctx, image.id, data, store)
        return self.image(image.id, ctx=ctx)

    def image(self, image_id: str, *, ctx: RequestContext | None = None) -> dict[str, Any]:
        """The image as ``GET /v2/images/{id}`` shows it (NotFound if ``ctx`` may not see it)."""
        return image_views.api(self.glint.images.get(ctx or self.ctx, image_id))

    def images(self) -> list[dict[str, Any]]:
        """Every image not deleted, whoever owns it (to check what a script left behind)."""
        with self.glint.db.reader() as session:
            rows = session.scalars(sa.select(models.Image).where(models.Image.deleted.is_(False))
                                   .order_by(models.Image.created_at))
            return [image_views.api(row) for row in rows]

    def location(self, image_id: str) -> str | None:
        """Where the image's bytes are in their store (to read, or to damage, them)."""
        return self.glint.images.get(RequestContext.admin(), image_id).location

    def store_of(self, image_id: str) -> Store:
        """The store holding the image's (first copy of) bytes; :attr:`store` with one store."""
        held = image_locations.held(self.glint.images.get(RequestContext.admin(), image_id))
        return multi.of(self.store).backend(held[0][0] if held else None)

    def image_data(self, image_id: str) -> bytes:
        location = self.location(image_id)
        return b"" if location is None else b"".join(self.store_of(image_id).read(location))

    # -- notifications -------------------------------------------------------------------

    def event_types(self) -> list[str]:
        """The ``event_type`` of every notification so far (``notifier.events`` has them all)."""
        return self.notifier.types()

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self.glint.close(timeout=10)
        if self._temporary:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> ScriptHarness:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def _build(self) -> app.Glint:
        installed = registry_mod.Registry.load()
        scripts = {script.type: script for script in installed}
        scripts.update({name: registry_mod.validate(name, obj, None)
                        for name, obj in self._scripts.items()})
        broken = {b.type: b for b in installed.broken if b.type not in scripts}
        glint = app.build(self.settings, store=self.store, notifier=self.notifier,
                          registry=registry_mod.Registry(scripts, broken), executor="inline")
        models.Base.metadata.create_all(glint.db.engine)
        return glint

    def _type_of(self, script: str | Any) -> str:
        if isinstance(script, str):
            return script
        main = getattr(script, "main", None)
        for loaded in self.glint.registry:
            if loaded.main == main:
                return loaded.type
        name = str(getattr(script, "__name__", type(script).__name__)).rpartition(".")[2]
        self._scripts[name] = script
        self.glint.close(timeout=10)
        self.glint = self._build()  # same database, store and notifier: nothing is lost
        return name

    def _upload(self, ctx: RequestContext, image_id: str, data: bytes, store: str | None) -> None:
        with multi.of(self.store).backend(store).writer(image_id) as writer:
            digest = datapath.copy([data], writer, size_cap=self.settings.image_size_cap,
                                   hash_algo=self.settings.hashing_algorithm)
            location = writer.commit()
        self.glint.images.set_status(ctx, image_id, image_states.SAVING,
                                     expected=image_states.QUEUED)
        self.glint.images.set_data(ctx, image_id, images.ImageData(
            location=location, size=digest.size, checksum=digest.checksum,
            os_hash_algo=digest.hash_algo, os_hash_value=digest.hash_value, store=store),
            from_status=image_states.SAVING)


@pytest.fixture
def script_harness(tmp_path: pathlib.Path) -> Iterator[ScriptHarness]:
    """A :class:`ScriptHarness` in the test's ``tmp_path``, closed after the test."""
    with ScriptHarness(tmp_path / "glint") as harness:
        yield harness
