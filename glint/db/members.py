"""Image member rows: the projects an image is shared with. Callers own the session."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy import orm

from glint.db import models


def list_(session: orm.Session, image_id: str) -> Sequence[models.ImageMember]:
    """The image's live members, oldest first."""
    return session.scalars(sa.select(models.ImageMember).where(
        models.ImageMember.image_id == image_id, models.ImageMember.deleted.is_(False),
    ).order_by(models.ImageMember.created_at, models.ImageMember.id)).all()


def get(session: orm.Session, image_id: str, member: str,
        include_deleted: bool = False) -> models.ImageMember | None:
    """The row for ``member`` (a deleted one too with ``include_deleted``: ids are unique)."""
    stmt = sa.select(models.ImageMember).where(models.ImageMember.image_id == image_id,
                                               models.ImageMember.member == member)
    if not include_deleted:
        stmt = stmt.where(models.ImageMember.deleted.is_(False))
    return session.scalars(stmt).one_or_none()


def count(session: orm.Session, image_id: str) -> int:
    return int(session.scalar(sa.select(sa.func.count()).select_from(models.ImageMember).where(
        models.ImageMember.image_id == image_id, models.ImageMember.deleted.is_(False))) or 0)
