"""``glint db load-metadefs`` and ``glint db export-metadefs``: Glance's metadef JSON files in
and out, round trip included. The files are small ones shaped like Glance's etc/metadefs."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest

from glint import policy, settings
from glint.context import RequestContext
from glint.db import engine, models
from glint.metadefs.service import MetadefService
from tests.unit.cli_support import database, run, workdir  # noqa: F401  (workdir is a fixture)

WATCHDOG = {
    "namespace": "Example::Compute::Watchdog",
    "display_name": "Watchdog Behavior",
    "description": "What a hypervisor does when a guest hangs. " * 15,  # longer than the API's 500
    "visibility": "public",
    "protected": True,
    "resource_type_associations": [
        {"name": "OS::Glance::Image"},
        {"name": "OS::Cinder::Volume", "properties_target": "image"},
        {"name": "Example::Appliance", "prefix": "ex_"},
    ],
    "properties": {
        "hw_watchdog_action": {"title": "Watchdog Action", "type": "string",
                               "enum": ["disabled", "reset", "poweroff", "pause", "none"]},
        "hw_watchdog_timeout": {"title": "Timeout", "type": "integer", "minimum": 0},
    },
}
SHAPES = {  # no visibility, protected or owner: the loader's defaults apply
    "namespace": "Example::Shapes",
    "objects": [{"name": "Pair", "description": "Two numbers", "required": ["a"],
                 "properties": {"a": {"title": "A", "type": "integer"},
                                "b": {"title": "B", "type": "number"}}}],
    "tags": [{"name": "round"}, {"name": "square"}],
}
DEFAULTS = {"visibility": "public", "protected": False}


def _write(directory: pathlib.Path, **documents: Any) -> pathlib.Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, document in documents.items():
        (directory / f"{name}.json").write_text(json.dumps(document), encoding="utf-8")
    return directory


@pytest.fixture
def service(workdir: pathlib.Path) -> Iterator[MetadefService]:  # noqa: F811
    db = engine.Database(database(workdir))
    yield MetadefService(db, policy.Policy.from_settings(settings.Settings(), []))
    db.dispose()


def _count(workdir: pathlib.Path) -> int:  # noqa: F811
    db = engine.Database(database(workdir))
    try:
        with db.reader() as session:
            return session.query(models.MetadefNamespace).count()
    finally:
        db.dispose()


@pytest.fixture
def migrated() -> None:
    assert run("db", "upgrade").exit_code == 0


def test_load_then_export_round_trips(workdir: pathlib.Path, migrated: None,  # noqa: F811
                                      service: MetadefService) -> None:
    source = _write(workdir / "in", **{"compute-watchdog": WATCHDOG, "shapes": SHAPES})
    result = run("db", "load-metadefs", str(source))
    assert (result.exit_code, result.output) == (0, f"loaded 2 namespaces from {source}\n")

    member = RequestContext(user_id="u", project_id="p", roles=("member", "reader"))
    shown = service.get_namespace(member, "Example::Shapes")  # public: all see it
    assert shown["objects"][0]["required"] == ["a"] and shown["owner"] == "admin"
    with service.db.reader() as session:
        appliance = session.query(models.MetadefResourceType).filter_by(
            name="Example::Appliance").one()
        assert appliance.protected  # created by the loader, as Glance's does

    out = workdir / "out"
    result = run("db", "export-metadefs", str(out))
    assert (result.exit_code, result.output) == (0, f"exported 2 namespaces to {out}\n")
    exported = {p.name: json.loads(p.read_text()) for p in out.iterdir()}
    assert exported == {"Example-Compute-Watchdog.json": {**WATCHDOG, "owner": "admin"},
                        "Example-Shapes.json": {**SHAPES, **DEFAULTS, "owner": "admin"}}

    # The export loads into a fresh database and exports to the same files.
    fresh = {"GLINT_DATABASE_URL": f"sqlite:///{workdir / 'fresh.db'}"}
    assert run("db", "upgrade", **fresh).exit_code == 0
    assert run("db", "load-metadefs", str(out), **fresh).exit_code == 0
    assert run("db", "export-metadefs", str(workdir / "again"), **fresh).exit_code == 0
    for path in out.iterdir():
        assert (workdir / "again" / path.name).read_text() == path.read_text()


def test_existing_namespaces_are_skipped_unless_overwritten(
        workdir: pathlib.Path, migrated: None, service: MetadefService) -> None:  # noqa: F811
    source = _write(workdir / "in", shapes=SHAPES)
    assert run("db", "load-metadefs", str(source)).exit_code == 0
    changed = {**SHAPES, "tags": [{"name": "oval"}]}
    _write(source, shapes=changed)
    result = run("db", "load-metadefs", str(source))
    assert result.output == ("skipped Example::Shapes: it exists already (--overwrite "
                             f"replaces it)\nloaded 0 namespaces from {source}\n")
    admin = RequestContext.admin()
    assert [t["name"] for t in service.get_namespace(admin, "Example::Shapes")
            ["tags"]] == ["round", "square"]
    assert run("db", "load-metadefs", "--overwrite", str(source / "shapes.json")).exit_code == 0
    assert [t["name"] for t in service.get_namespace(admin, "Example::Shapes")
            ["tags"]] == ["oval"]


@pytest.mark.parametrize("bad, message", [
    ({"namespace": "Example::Broken", "objects": [{"description": "no name"}]},
     "'objects' must be a list of objects, each with a 'name' string"),
    ({"display_name": "no namespace"}, "'namespace' (a string) is missing"),
    ({"namespace": "Example::Shapes"}, "namespace 'Example::Shapes' is in"),
])
def test_a_bad_file_loads_nothing(workdir: pathlib.Path, migrated: None,  # noqa: F811
                                  bad: dict[str, Any], message: str) -> None:
    source = _write(workdir / "in", shapes=SHAPES, **{"zz-bad": bad})
    result = run("db", "load-metadefs", str(source))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {source / 'zz-bad.json'}: ")
    assert message in result.stderr
    assert _count(workdir) == 0


def test_loading_needs_a_migrated_database(workdir: pathlib.Path) -> None:  # noqa: F811
    result = run("db", "load-metadefs", str(_write(workdir / "in", shapes=SHAPES)))
    assert result.exit_code == 2 and "glint db upgrade" in result.stderr
