"""Parsing ``GET /v2/images`` parameters into an ImageQuery."""

from __future__ import annotations

import datetime

import pytest
from starlette.datastructures import QueryParams

from glint import errors
from glint import settings as settings_mod
from glint.api import image_query
from glint.db.images import Comparison

SETTINGS = settings_mod.Settings(limit_param_default=25, api_limit_max=1000)


def parse(query: str) -> image_query.image_rows.ImageQuery:
    return image_query.parse(QueryParams(query), SETTINGS)


def test_defaults() -> None:
    query = parse("")
    assert query.limit == 25
    assert query.marker is None
    assert query.sort == (("created_at", "desc"),)
    assert query.visibility is None
    assert query.member_status == "accepted"
    assert query.comparisons == (Comparison("os_hidden", "eq", False),)
    assert query.tags == () and query.properties == ()


@pytest.mark.parametrize(("query", "sort"), [
    ("sort_key=name", (("name", "desc"),)),
    ("sort_key=name&sort_key=size&sort_dir=asc", (("name", "asc"), ("size", "asc"))),
    ("sort_key=name&sort_key=size&sort_dir=asc&sort_dir=desc", (("name", "asc"), ("size", "desc"))),
    ("sort=name:asc,size", (("name", "asc"), ("size", "desc"))),
    ("sort_dir=asc", (("created_at", "asc"),)),
])
def test_sorting(query: str, sort: tuple[tuple[str, str], ...]) -> None:
    assert parse(query).sort == sort


def test_limit_is_capped() -> None:
    assert parse("limit=5000").limit == 1000


def test_other_keys_are_property_filters() -> None:
    query = parse("os_distro=ubuntu&hw_disk_bus=scsi&tag=a&tag=b&limit=3")
    assert query.properties == (("os_distro", "ubuntu"), ("hw_disk_bus", "scsi"))
    assert query.tags == ("a", "b")


def test_comparisons() -> None:
    query = parse("name=in:a,b&size_min=3&created_at=gt:2020-01-01T01:00:00%2B01:00"
                  "&min_disk=2&protected=TRUE")
    assert set(query.comparisons) == {
        Comparison("os_hidden", "eq", False), Comparison("protected", "eq", True),
        Comparison("size", "gte", 3), Comparison("name", "in", ("a", "b")),
        Comparison("created_at", "gt", datetime.datetime(2020, 1, 1)),
        Comparison("min_disk", "eq", 2),
    }


@pytest.mark.parametrize(("value", "items"), [
    ('a,"b,c",d', ["a", "b,c", "d"]),
    ('"a"', ["a"]),
    ("a", ["a"]),
    ('"x\\"y",z', ['x\\"y', "z"]),
])
def test_split_quoted(value: str, items: list[str]) -> None:
    assert image_query.split_quoted(value) == items


@pytest.mark.parametrize("value", ['"open', 'a"b"', '"a"b'])
def test_split_quoted_refuses_bad_quotes(value: str) -> None:
    with pytest.raises(errors.BadRequest):
        image_query.split_quoted(value)


@pytest.mark.parametrize(("expression", "split"), [
    ("plain", ("eq", "plain")),
    ("in:a,b", ("in", "a,b")),
    ("gte:2020-01-01T00:00:00Z", ("gte", "2020-01-01T00:00:00Z")),
    ("2020-01-01T00:00:00Z", ("eq", "2020-01-01T00:00:00Z")),
    ("odd:name", ("odd", "name")),
])
def test_split_operator(expression: str, split: tuple[str, str]) -> None:
    assert image_query.split_operator(expression) == split
