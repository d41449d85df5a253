"""Image rows: visibility rules and lookups. Callers own the session and its commit."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import orm

from glint import errors
from glint.context import RequestContext
from glint.db import models


def visible(ctx: RequestContext) -> sa.ColumnElement[bool]:
    """Glance's rule: admins see all; others their own, public, community, and shared-with-them."""
    if ctx.is_admin:
        return sa.true()
    member_of = sa.select(models.ImageMember.image_id).where(
        models.ImageMember.member == ctx.project_id, models.ImageMember.deleted.is_(False))
    return sa.or_(
        models.Image.owner == ctx.project_id,
        models.Image.visibility.in_(("public", "community")),
        sa.and_(models.Image.visibility == "shared", models.Image.id.in_(member_of)),
    )


def get(session: orm.Session, ctx: RequestContext, image_id: str,
        for_update: bool = False) -> models.Image:
    """The image if ``ctx`` may see it; NotFound (never Forbidden) otherwise."""
    stmt = sa.select(models.Image).where(
        models.Image.id == image_id, models.Image.deleted.is_(False), visible(ctx))
    if for_update:
        stmt = stmt.with_for_update()
    image = session.scalars(stmt).one_or_none()
    if image is None:
        raise errors.NotFound(f"No image found with ID {image_id}")
    return image


def get_any(session: orm.Session, image_id: str) -> models.Image | None:
    return session.get(models.Image, image_id)


def add(session: orm.Session, image: models.Image) -> None:
    session.add(image)
    session.flush()
