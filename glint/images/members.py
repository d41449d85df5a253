"""Sharing an image with other projects: the members of a ``shared`` image (Glance's rules).

Only ``shared`` images have members (Forbidden otherwise). The policy (:mod:`glint.policy`)
says who does what; by default the owner's members (or an admin) add and remove members, and
each member project alone (or an admin) sets its own status: ``pending`` until it
``accepted`` or ``rejected`` the image. A member sees only its own membership, the owner sees
all. Accepted shared images appear in the member's image list by default; any membership makes
the image visible to ``GET /v2/images/{id}`` (see :func:`glint.db.images.visible`).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import orm

from glint import errors
from glint import policy as policies
from glint.context import RequestContext
from glint.db import engine, models
from glint.db import images as image_rows
from glint.db import members as member_rows
from glint.images import attributes, views
from glint.notifiers import base as notifiers
from glint.settings import Settings

STATUSES = ("pending", "accepted", "rejected")
MAX_MEMBER_LENGTH = 255


class MemberService:
    def __init__(self, db: engine.Database, notifier: notifiers.Notifier,
                 settings: Settings, policy: policies.Policy) -> None:
        self.policy = policy
        self.db = db
        self.notifier = notifier
        self.settings = settings

    def list(self, ctx: RequestContext, image_id: str) -> Sequence[models.ImageMember]:
        """The memberships ``ctx`` may see: all for the owner, its own for a member."""
        with self.db.reader() as session:
            image = _shared(session, ctx, image_id, f"Not allowed to list members for image "
                                                    f"{image_id}: ")
            rows = member_rows.list_(session, image.id)
            mine = [row.member for row in rows if row.member == ctx.project_id]
            self.policy.enforce_image(ctx, "get_members",
                                      policies.image_target(image, mine[0] if mine else None))
            return [row for row in rows if _may_see(ctx, image, row)]

    def get(self, ctx: RequestContext, image_id: str, member_id: str) -> models.ImageMember:
        """One membership; every refusal is NotFound here, as Glance hides them all."""
        with self.db.reader() as session:
            try:
                image = _shared(session, ctx, image_id, "")
            except errors.Forbidden as exc:
                raise errors.NotFound(exc.message) from None
            row = _member(session, ctx, image, member_id)
            if not self.policy.check(ctx, "get_member", policies.image_target(image, row.member)):
                raise _not_found(image, member_id)
            return row

    def create(self, ctx: RequestContext, image_id: str, member_id: str) -> models.ImageMember:
        """Share the image with project ``member_id`` (status ``pending``)."""
        with self.db.session() as session:
            image = _shared(session, ctx, image_id, "", for_update=True)
            self.policy.enforce_image(ctx, "add_member", policies.image_target(image, _mine(
                session, ctx, image)))
            row = member_rows.get(session, image.id, member_id, include_deleted=True)
            if row is not None and not row.deleted:
                raise errors.Conflict(f"Member {member_id} is duplicated for image {image_id}")
            attempted = member_rows.count(session, image.id) + 1
            if attributes.over_quota(attempted, self.settings.image_member_quota):
                raise errors.TooLarge(
                    f"Image member limit exceeded for image {image_id}: The limit has been "
                    f"exceeded on the number of allowed image members for this image. "
                    f"Attempted: {attempted}, Maximum: {self.settings.image_member_quota}")
            row = _revive(row) if row is not None else models.ImageMember(
                image_id=image.id, member=member_id, status="pending")
            session.add(row)
            session.flush()
        self._notify("image.member.create", row)
        return row

    def update(self, ctx: RequestContext, image_id: str, member_id: str,
               status: str) -> models.ImageMember:
        """Set a membership's status: only the member itself (or an admin) may."""
        with self.db.session() as session:
            image = _shared(session, ctx, image_id, "")
            row = _member(session, ctx, image, member_id)
            self.policy.enforce_image(ctx, "modify_member",
                                      policies.image_target(image, row.member))
            if status not in STATUSES:
                raise errors.BadRequest('Incorrect request: Status must be "pending", '
                                        '"accepted" or "rejected".')
            row.status = status
            row.updated_at = models.utcnow()
        self._notify("image.member.update", row)
        return row

    def delete(self, ctx: RequestContext, image_id: str, member_id: str) -> None:
        """Stop sharing with ``member_id``: only the owner (or an admin) may."""
        with self.db.session() as session:
            image = _shared(session, ctx, image_id, "")
            row = _member(session, ctx, image, member_id)
            self.policy.enforce_image(ctx, "delete_member", policies.image_target(image, _mine(
                session, ctx, image)))
            row.deleted = True
            row.deleted_at = models.utcnow()
        self._notify("image.member.delete", row)

    def _notify(self, event_type: str, row: models.ImageMember) -> None:
        self.notifier.notify(notifiers.Event(event_type, views.member_notification(row)))


def check_member_id(value: object) -> str:
    """A project id to share with: a non-empty printable string of at most 255 characters."""
    if not isinstance(value, str):
        raise errors.BadRequest('Expected a member in the form: {"member": "image_id"}')
    if not value:
        raise errors.BadRequest("Member can't be empty")
    if len(value) > MAX_MEMBER_LENGTH or not value.isprintable():
        raise errors.BadRequest(f"Invalid member: at most {MAX_MEMBER_LENGTH} printable "
                                "characters")
    return value


def _shared(session: orm.Session, ctx: RequestContext, image_id: str, prefix: str,
            for_update: bool = False) -> models.Image:
    image = image_rows.get(session, ctx, image_id, for_update=for_update)
    if image.visibility != "shared":
        raise errors.Forbidden(f"{prefix}Only shared images have members.")
    return image


def _may_see(ctx: RequestContext, image: models.Image, row: models.ImageMember) -> bool:
    return ctx.is_admin or image.owner == ctx.owner or row.member == ctx.owner


def _member(session: orm.Session, ctx: RequestContext, image: models.Image,
            member_id: str) -> models.ImageMember:
    # An id no member can have is simply not found (and never reaches the database).
    valid = 0 < len(member_id) <= MAX_MEMBER_LENGTH and member_id.isprintable()
    row = member_rows.get(session, image.id, member_id) if valid else None
    if row is None or not _may_see(ctx, image, row):
        raise _not_found(image, member_id)
    return row


def _mine(session: orm.Session, ctx: RequestContext, image: models.Image) -> str | None:
    """The caller's project when the image is shared with it (the target's ``member_id``)."""
    if ctx.project_id is None or member_rows.get(session, image.id, ctx.project_id) is None:
        return None
    return ctx.project_id


def _not_found(image: models.Image, member_id: str) -> errors.NotFound:
    return errors.NotFound(f"{member_id[:255]} not found in the member list of the image "
                           f"{image.id}.")


def _revive(row: models.ImageMember) -> models.ImageMember:
    """A deleted membership made new again (``(image_id, member)`` is unique)."""
    now = models.utcnow()
    row.deleted, row.deleted_at, row.status = False, None, "pending"
    row.created_at = row.updated_at = now
    return row
