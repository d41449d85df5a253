"""Turning multi-store on over a single store's images: refuse a set-up that loses them.

Images written before ``enabled_backends`` was set are recorded in "the default store"
(``image_locations.store`` NULL), and their bytes sit in the old ``store_path``. Multi-store
reads them from the default backend, whose directory is ``<store_path>/<store id>`` unless
``backend_paths`` says otherwise: turned on as is, every such image would answer 500. The
start-up of ``glint serve`` and ``glint worker`` checks for this and stops with the fix.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from glint import errors, plugins
from glint.db import engine, models
from glint.settings import Settings
from glint.stores.base import Store
from glint.stores.multi import MultiStore

PROBES = 20  # default-store images looked for; one readable in the old store only is enough
GUIDE = "docs/how-to/multi-store.md (Coming from one store)"


def check(db: engine.Database, settings: Settings, backends: MultiStore) -> None:
    """ConfigurationError, naming the ``backend_paths`` fix, when images written without
    multi-store are in the old store but not in the default backend that would read them."""
    if not backends.multi:
        return
    keys = _single_store_keys(db)
    default = backends.backend(None)
    missing = [key for key in keys if not _readable(default, key)]
    old_path = settings.effective_store_path
    if not missing or not old_path.is_dir():
        return
    old_store: Store = plugins.load("glint.stores", settings.store)(old_path)
    if any(_readable(old_store, key) for key in missing):
        raise errors.ConfigurationError(_refusal(settings, backends.default, _count(db)))


def _single_store_keys(db: engine.Database) -> list[str]:
    query = (sa.select(models.ImageLocation.location).join(models.Image).where(*_SINGLE_STORE)
             .order_by(models.ImageLocation.id).limit(PROBES))
    with db.reader() as session:
        return list(session.scalars(query))


def _count(db: engine.Database) -> int:
    query = sa.select(sa.func.count()).select_from(models.ImageLocation).join(models.Image)
    with db.reader() as session:
        return int(session.scalar(query.where(*_SINGLE_STORE)) or 0)


# The active copies of live images recorded without a store id (written single-store).
_SINGLE_STORE = (models.ImageLocation.store.is_(None), models.ImageLocation.status == "active",
                 models.Image.deleted == sa.false())


def _readable(store: Store, key: str) -> bool:
    try:
        store.size(key)
    except errors.StoreError:
        return False
    return True


def _refusal(settings: Settings, default: str, count: int) -> str:
    old = str(settings.effective_store_path.resolve())
    new = settings.effective_backend_path(default).resolve()
    paths = {**{k: str(v) for k, v in settings.backend_paths.items()}, default: old}
    toml = ", ".join(f"{store_id} = {json.dumps(path)}" for store_id, path in paths.items())
    return (f"{count} image{'' if count == 1 else 's'} stored before enabled_backends was set "
            f"{'is' if count == 1 else 'are'} in the old store {old}, but the default backend "
            f"{default!r} reads {new}: they would be unreadable. Point it at the old store "
            f"before starting: backend_paths = {{{toml}}} in the settings file (or "
            f"GLINT_BACKEND_PATHS='{json.dumps(paths)}'); see {GUIDE}")
