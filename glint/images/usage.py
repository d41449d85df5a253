"""What a project uses: Glance's four keystone-limit resources (``GET /v2/info/usage``).

Sizes are in MiB, rounded down, as Glance reports them (the unit keystone limits use).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from glint.db import engine, models
from glint.images import states

MiB = 1024 * 1024
NO_LIMIT = -1
IN_UPLOAD = (states.SAVING, states.UPLOADING, states.IMPORTING)
STAGED = (states.UPLOADING, states.IMPORTING)


def of_project(db: engine.Database, owner: str | None) -> dict[str, dict[str, Any]]:
    """``{resource: {"usage": n, "limit": -1}}`` for images ``owner`` owns (no limits yet)."""
    image = models.Image
    mine = sa.and_(image.owner == owner, image.deleted.is_(False))
    stored = sa.func.coalesce(sa.func.sum(sa.case((image.location.is_not(None), image.size),
                                                  else_=0)), 0)
    staged = sa.func.coalesce(sa.func.sum(sa.case((image.status.in_(STAGED), image.size),
                                                  else_=0)), 0)
    uploading = sa.func.coalesce(sa.func.sum(sa.case((image.status.in_(IN_UPLOAD), 1),
                                                     else_=0)), 0)
    with db.reader() as session:
        row = session.execute(sa.select(stored, staged, sa.func.count(), uploading)
                              .where(mine)).one()
    values = {"image_size_total": int(row[0]) // MiB, "image_stage_total": int(row[1]) // MiB,
              "image_count_total": int(row[2]), "image_count_uploading": int(row[3])}
    return {name: {"usage": value, "limit": NO_LIMIT} for name, value in values.items()}
