"""Keyset paging over tasks: every task exactly once, whatever the sort, on both engines."""

from __future__ import annotations

import dataclasses
import datetime
import uuid

import pytest

from glint import app, errors
from glint.context import RequestContext
from glint.db import models
from glint.db import tasks as task_rows
from tests.conftest import MakeGlint

T0 = datetime.datetime(2025, 1, 1, 12, 0, 0)
FAR = datetime.datetime(2999, 1, 1)


def seed(glint: app.Glint, ctx: RequestContext) -> list[str]:
    """Eleven tasks with ties on created_at and status, and NULL and equal expires_at values."""
    ids = []
    with glint.db.session() as session:
        for i in range(11):
            expires = None if i % 3 == 0 else FAR + datetime.timedelta(days=i % 2)
            task = models.Task(
                id=str(uuid.uuid4()), type="echo", owner=ctx.owner,
                status=("pending", "success", "failure")[i % 3], input={}, message="",
                context=ctx.to_dict(), created_at=T0 + datetime.timedelta(seconds=i // 3),
                updated_at=T0, expires_at=expires)
            session.add(task)
            ids.append(task.id)
    return ids


def walk(glint: app.Glint, ctx: RequestContext, sort_key: str, sort_dir: str,
         limit: int) -> list[str]:
    seen: list[str] = []
    marker = None
    for _ in range(100):
        page = glint.tasks.list(ctx, task_rows.TaskQuery(
            limit=limit, marker=marker, sort_key=sort_key, sort_dir=sort_dir))
        seen += [t.id for t in page]
        if len(page) < limit:
            return seen
        marker = page[-1].id
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("sort_key", ["created_at", "expires_at", "status", "id", "type"])
@pytest.mark.parametrize("sort_dir", ["asc", "desc"])
def test_pages_hold_every_task_once_in_order(make_glint: MakeGlint, ctx: RequestContext,
                                             sort_key: str, sort_dir: str) -> None:
    glint = make_glint()
    ids = seed(glint, ctx)
    whole = walk(glint, ctx, sort_key, sort_dir, limit=1000)
    assert sorted(whole) == sorted(ids)
    for limit in (1, 2, 3, 5):
        assert walk(glint, ctx, sort_key, sort_dir, limit) == whole


def test_nulls_come_first_ascending_and_last_descending(make_glint: MakeGlint,
                                                        ctx: RequestContext) -> None:
    glint = make_glint()
    seed(glint, ctx)
    query = task_rows.TaskQuery(limit=100, sort_key="expires_at")
    ascending = glint.tasks.list(ctx, dataclasses.replace(query, sort_dir="asc"))
    descending = glint.tasks.list(ctx, dataclasses.replace(query, sort_dir="desc"))
    assert [t.expires_at is None for t in ascending] == [True] * 4 + [False] * 7
    assert [t.expires_at is None for t in descending] == [False] * 7 + [True] * 4


def test_a_marker_from_another_project_is_refused(make_glint: MakeGlint, ctx: RequestContext,
                                                  other_ctx: RequestContext) -> None:
    glint = make_glint()
    theirs = seed(glint, other_ctx)[0]
    with pytest.raises(errors.BadRequest, match="marker"):
        glint.tasks.list(ctx, task_rows.TaskQuery(limit=5, marker=theirs))

