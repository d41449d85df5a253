"""The staging area: where ``PUT /v2/images/{id}/stage`` keeps data until its import.

It is a filesystem store of its own under the ``staging_path`` setting, keyed by image id
(Glance's ``node_staging_uri``). Writes go to a temporary file renamed into place, so a key never
holds part of an upload. Staged data is removed when its import ends (either way), when its
image is deleted, and at start-up when its image is gone.
"""

from __future__ import annotations

import logging

from glint.db import engine
from glint.db import images as image_rows
from glint.images import states
from glint.settings import Settings
from glint.stores.base import Store
from glint.stores.filesystem import FilesystemStore

LOG = logging.getLogger(__name__)
# Statuses in which an image's staged data is still wanted.
STAGED_STATUSES = frozenset({states.UPLOADING, states.IMPORTING})


def area(settings: Settings) -> FilesystemStore:
    """The staging area ``settings`` name (created if missing)."""
    return FilesystemStore(settings.effective_staging_path)


def remove_residue(db: engine.Database, staging: Store) -> int:
    """Delete unfinished staging writes and staged data whose image no longer wants it.

    Run at start-up, before pending tasks resume; returns how many files went.
    """
    removed = staging.remove_temporary_files()
    with db.reader() as session:
        for key in list(staging.locations()):
            image = image_rows.get_any(session, key)
            if image is None or image.deleted or image.status not in STAGED_STATUSES:
                staging.delete(key)
                removed += 1
    if removed:
        LOG.info("removed %d staging files left behind", removed)
    return removed
