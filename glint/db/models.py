"""SQLAlchemy models for images and tasks.

Times are stored as naive UTC. Rows are soft-deleted (``deleted``/``deleted_at``) the way Glance
keeps them, so an image id is never reused, and hard-deleted by ``glint db purge``.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import orm

from glint.db import task_states as states


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


M = TypeVar("M", bound="Base")


def detached(cls: type[M], row: Mapping[Any, Any]) -> M:
    """A row read (or written) through Core as an instance of ``cls``, detached: as a session
    with ``expire_on_commit=False`` leaves what it loaded once it closes. ``row`` has every
    column (an attribute missing would be expired, and raise when read).

    The values go into the instance's ``__dict__`` as the ORM's own loading puts them, not
    through the mapped constructor: its attribute events (a setattr and a history entry for
    each of a task's 26 columns) were a seventh of a task's CPU, two such rows a run."""
    instance: M = orm.class_mapper(cls).class_manager.new_instance()
    instance.__dict__.update(row)
    orm.make_transient_to_detached(instance)
    return instance


def insert_values(instance: Base) -> dict[str, Any]:
    """A new instance's row as its ORM flush would insert it, for a Core INSERT: the columns
    set on it, and every column with a default (filled in on ``instance`` too). A column with
    neither is left out (NULL), as the flush leaves it; ``instance`` then needs
    :func:`mark_written` before anyone reads it."""
    state = instance.__dict__
    values: dict[str, Any] = {}
    for column in instance.__table__.columns:
        key = column.key
        if key in state:
            values[key] = state[key]
        elif column.default is not None:
            default: Any = column.default
            value = default.arg(None) if default.is_callable else default.arg
            state[key] = value  # as a flush fills it in; no history (the row is new)
            values[key] = value
    return values


def mark_written(instance: Base) -> None:
    """After a Core INSERT of :func:`insert_values`: ``instance`` is detached, as after its
    session's commit; the columns the INSERT left NULL read as None."""
    state = instance.__dict__
    for column in instance.__table__.columns:
        state.setdefault(column.key, None)
    orm.make_transient_to_detached(instance)


class Base(orm.DeclarativeBase):
    metadata = sa.MetaData(naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })


class Timestamped:
    created_at: orm.Mapped[datetime.datetime] = orm.mapped_column(default=utcnow)
    updated_at: orm.Mapped[datetime.datetime] = orm.mapped_column(default=utcnow, onupdate=utcnow)
    deleted: orm.Mapped[bool] = orm.mapped_column(default=False)
    deleted_at: orm.Mapped[datetime.datetime | None]


class Image(Timestamped, Base):
    __tablename__ = "images"
    __table_args__ = (
        sa.Index("ix_images_owner_created", "owner", "created_at"),
        sa.Index("ix_images_visibility", "visibility"),
    )

    id: orm.Mapped[str] = orm.mapped_column(sa.String(36), primary_key=True)
    name: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    status: orm.Mapped[str] = orm.mapped_column(sa.String(30))
    visibility: orm.Mapped[str] = orm.mapped_column(sa.String(20), default="shared")
    protected: orm.Mapped[bool] = orm.mapped_column(default=False)
    os_hidden: orm.Mapped[bool] = orm.mapped_column(default=False)
    owner: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    size: orm.Mapped[int | None] = orm.mapped_column(sa.BigInteger)
    virtual_size: orm.Mapped[int | None] = orm.mapped_column(sa.BigInteger)
    checksum: orm.Mapped[str | None] = orm.mapped_column(sa.String(32))
    os_hash_algo: orm.Mapped[str | None] = orm.mapped_column(sa.String(64))
    os_hash_value: orm.Mapped[str | None] = orm.mapped_column(sa.String(128))
    disk_format: orm.Mapped[str | None] = orm.mapped_column(sa.String(20))
    container_format: orm.Mapped[str | None] = orm.mapped_column(sa.String(20))
    min_disk: orm.Mapped[int] = orm.mapped_column(default=0)
    min_ram: orm.Mapped[int] = orm.mapped_column(default=0)
    # The store's key for the bytes; never shown to users (CVE-2013-1840).
    location: orm.Mapped[str | None] = orm.mapped_column(sa.String(1024))

    properties: orm.Mapped[list[ImageProperty]] = orm.relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ImageProperty.name")
    tags: orm.Mapped[list[ImageTag]] = orm.relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ImageTag.value")
    # The stores holding the bytes (multi-store); ``location`` above is the first one's key.
    locations: orm.Mapped[list[ImageLocation]] = orm.relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ImageLocation.id")

    @property
    def extra_properties(self) -> dict[str, str]:
        return {p.name: p.value for p in self.properties}

    def set_property(self, name: str, value: str) -> None:
        for prop in self.properties:
            if prop.name == name:
                prop.value = value
                return
        self.properties.append(ImageProperty(name=name, value=value))

    def remove_property(self, name: str) -> None:
        self.properties[:] = [p for p in self.properties if p.name != name]


class ImageProperty(Base):
    __tablename__ = "image_properties"

    image_id: orm.Mapped[str] = orm.mapped_column(
        sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    name: orm.Mapped[str] = orm.mapped_column(sa.String(255), primary_key=True)
    value: orm.Mapped[str] = orm.mapped_column(sa.Text)


class ImageTag(Base):
    __tablename__ = "image_tags"

    image_id: orm.Mapped[str] = orm.mapped_column(
        sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    value: orm.Mapped[str] = orm.mapped_column(sa.String(255), primary_key=True)


class ImageLocation(Base):
    """One store's copy of an image's bytes. ``store`` None: the default store (rows written
    without multi-store, and those migrated from ``images.location``)."""

    __tablename__ = "image_locations"
    __table_args__ = (sa.UniqueConstraint("image_id", "store"),)

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True, autoincrement=True)
    image_id: orm.Mapped[str] = orm.mapped_column(
        sa.ForeignKey("images.id", ondelete="CASCADE"), index=True)
    store: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    location: orm.Mapped[str] = orm.mapped_column(sa.String(1024))
    status: orm.Mapped[str] = orm.mapped_column(sa.String(30), default="active")
    created_at: orm.Mapped[datetime.datetime] = orm.mapped_column(default=utcnow)


class ImageMember(Timestamped, Base):
    __tablename__ = "image_members"
    __table_args__ = (sa.UniqueConstraint("image_id", "member"),)

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True, autoincrement=True)
    image_id: orm.Mapped[str] = orm.mapped_column(
        sa.ForeignKey("images.id", ondelete="CASCADE"), index=True)
    member: orm.Mapped[str] = orm.mapped_column(sa.String(255), index=True)
    status: orm.Mapped[str] = orm.mapped_column(sa.String(20), default=states.PENDING)


class Task(Timestamped, Base):
    __tablename__ = "tasks"
    __table_args__ = (
        sa.Index("ix_tasks_owner_created", "owner", "created_at"),
        sa.Index("ix_tasks_status", "status"),
        sa.Index("ix_tasks_expires_at", "expires_at"),
        sa.Index("ix_tasks_image_id", "image_id"),
        sa.Index("ix_tasks_status_lease", "status", "lease_expires_at"),
        sa.Index("ix_tasks_status_type", "status", "type"),  # /metrics counts (0008)
        sa.Index("ix_tasks_updated_at", "updated_at"),  # the dashboard's recent tasks (0008)
    )

    id: orm.Mapped[str] = orm.mapped_column(sa.String(36), primary_key=True)
    type: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    status: orm.Mapped[str] = orm.mapped_column(sa.String(30))
    owner: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    image_id: orm.Mapped[str | None] = orm.mapped_column(sa.String(36))
    request_id: orm.Mapped[str | None] = orm.mapped_column(sa.String(64))
    user_id: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    input: orm.Mapped[dict[str, Any] | None] = orm.mapped_column(sa.JSON)
    result: orm.Mapped[dict[str, Any] | None] = orm.mapped_column(sa.JSON)
    message: orm.Mapped[str] = orm.mapped_column(sa.Text, default="")
    # What the script last reported: {"done", "total", "percent"} (glint.tasks.progress).
    progress: orm.Mapped[dict[str, Any] | None] = orm.mapped_column(sa.JSON)
    expires_at: orm.Mapped[datetime.datetime | None]
    # The creator's request context (roles included) so the runner can act on its behalf.
    context: orm.Mapped[dict[str, Any]] = orm.mapped_column(sa.JSON, default=dict)
    attempts: orm.Mapped[int] = orm.mapped_column(default=0)
    # The lease of the runner working on the task (docs/tasks.md): who, until when, and a
    # fencing token that grows with every claim, so a runner that lost the lease cannot write.
    max_attempts: orm.Mapped[int] = orm.mapped_column(default=3)
    lease_owner: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    lease_token: orm.Mapped[int] = orm.mapped_column(default=0)
    lease_expires_at: orm.Mapped[datetime.datetime | None]
    cancel_requested: orm.Mapped[bool] = orm.mapped_column(default=False)
    # The runner (lease owner name) that alone may run the task, as it alone holds what the
    # task needs in memory (glint.tasks.binding); None: any runner.
    bound_to: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    # Re-runs after a TransientError so far, and when the next may start (not claimed before).
    retries: orm.Mapped[int] = orm.mapped_column(default=0)
    retry_at: orm.Mapped[datetime.datetime | None]



class TaskAttempt(Base):
    """One run of a task: who ran it, when, and how it ended (the dashboard's timeline).

    A row is written when a runner claims the task and closed when the run ends: with the
    task's final status, ``retry`` (re-queued after a TransientError), or ``lost`` (its lease
    ran out and the reaper re-queued it). An open row (``ended_at`` NULL) is a run in progress.
    Rows go with their task when ``glint db purge`` removes it.
    """

    __tablename__ = "task_attempts"
    __table_args__ = (sa.Index("ix_task_attempts_task_id", "task_id", "number"),)

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True, autoincrement=True)
    task_id: orm.Mapped[str] = orm.mapped_column(sa.String(36))
    number: orm.Mapped[int]  # 1 for the first run, retries and re-queues included
    worker: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    started_at: orm.Mapped[datetime.datetime]
    ended_at: orm.Mapped[datetime.datetime | None]
    outcome: orm.Mapped[str | None] = orm.mapped_column(sa.String(30))
    message: orm.Mapped[str] = orm.mapped_column(sa.Text, default="")

# -- metadata definitions (metadefs): glint.metadefs -----------------------------------------
# Glance's catalogue of the metadata an operator suggests for images, volumes, flavors...
# Rows are hard-deleted, as Glance does; the children of a namespace go with it.


class MetadefTimes:
    created_at: orm.Mapped[datetime.datetime] = orm.mapped_column(default=utcnow)
    updated_at: orm.Mapped[datetime.datetime] = orm.mapped_column(default=utcnow, onupdate=utcnow)


class MetadefNamespace(MetadefTimes, Base):
    __tablename__ = "metadef_namespaces"

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True, autoincrement=True)
    namespace: orm.Mapped[str] = orm.mapped_column(sa.String(80), unique=True)
    display_name: orm.Mapped[str | None] = orm.mapped_column(sa.String(80))
    description: orm.Mapped[str | None] = orm.mapped_column(sa.Text)
    visibility: orm.Mapped[str] = orm.mapped_column(sa.String(32), default="private")
    protected: orm.Mapped[bool] = orm.mapped_column(default=False)
    owner: orm.Mapped[str] = orm.mapped_column(sa.String(255), index=True)


class MetadefObject(MetadefTimes, Base):
    __tablename__ = "metadef_objects"
    __table_args__ = (sa.UniqueConstraint("namespace_id", "name"),)

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True, autoincrement=True)
    namespace_id: orm.Mapped[int] = orm.mapped_column(
        sa.ForeignKey("metadef_namespaces.id", ondelete="CASCADE"))
    name: orm.Mapped[str] = orm.mapped_column(sa.String(80))
    description: orm.Mapped[str | None] = orm.mapped_column(sa.Text)
    required: orm.Mapped[list[str] | None] = orm.mapped_column(sa.JSON)
    # The object's properties: name to property definition (a JSON schema fragment).
    properties: orm.Mapped[dict[str, Any]] = orm.mapped_column(sa.JSON, default=dict)


class MetadefProperty(MetadefTimes, Base):
    __tablename__ = "metadef_properties"
    __table_args__ = (sa.UniqueConstraint("namespace_id", "name"),)

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True, autoincrement=True)
    namespace_id: orm.Mapped[int] = orm.mapped_column(
        sa.ForeignKey("metadef_namespaces.id", ondelete="CASCADE"))
    name: orm.Mapped[str] = orm.mapped_column(sa.String(80))
    # The definition (title, type, enum...) as Glance's property schema describes it.
    json_schema: orm.Mapped[dict[str, Any]] = orm.mapped_column(sa.JSON, default=dict)


class MetadefTag(MetadefTimes, Base):
    __tablename__ = "metadef_tags"
    __table_args__ = (sa.UniqueConstraint("namespace_id", "name"),)

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True, autoincrement=True)
    namespace_id: orm.Mapped[int] = orm.mapped_column(
        sa.ForeignKey("metadef_namespaces.id", ondelete="CASCADE"))
    name: orm.Mapped[str] = orm.mapped_column(sa.String(80))


class MetadefResourceType(MetadefTimes, Base):
    __tablename__ = "metadef_resource_types"

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True, autoincrement=True)
    name: orm.Mapped[str] = orm.mapped_column(sa.String(80), unique=True)
    protected: orm.Mapped[bool] = orm.mapped_column(default=False)


class MetadefNamespaceResourceType(MetadefTimes, Base):
    __tablename__ = "metadef_namespace_resource_types"

    namespace_id: orm.Mapped[int] = orm.mapped_column(
        sa.ForeignKey("metadef_namespaces.id", ondelete="CASCADE"), primary_key=True)
    resource_type_id: orm.Mapped[int] = orm.mapped_column(
        sa.ForeignKey("metadef_resource_types.id", ondelete="CASCADE"), primary_key=True)
    prefix: orm.Mapped[str | None] = orm.mapped_column(sa.String(80))
    properties_target: orm.Mapped[str | None] = orm.mapped_column(sa.String(80))


# Core statements (a task's insert, claim and end; its runs) use the tables themselves, and
# run in a session's connection or a bare one alike.
TASKS: sa.Table = Task.__table__  # type: ignore[assignment]
Writer = orm.Session | sa.Connection


def core(writer: Writer) -> sa.Connection:
    """The connection a Core statement runs on, under a session or bare."""
    return writer.connection() if isinstance(writer, orm.Session) else writer
