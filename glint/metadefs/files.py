"""Metadefs as JSON files, one per namespace: ``glint db load-metadefs`` and
``glint db export-metadefs``.

The format is Glance's (its ``etc/metadefs/*.json``, read by ``glance-manage db
load_metadefs``): a namespace's attributes with its ``resource_type_associations``,
``properties`` (name → definition), ``objects`` and ``tags``. Loading checks every file first
and writes them all in one transaction, so a bad file loads nothing. A namespace that exists
already is skipped, as Glance's loader does, unless ``overwrite`` replaces it with the file's.
What a file leaves out takes the loader's defaults: ``public``, not protected, owner ``admin``.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import orm

from glint import errors
from glint.context import RequestContext
from glint.db import engine, models
from glint.db import metadefs as rows
from glint.metadefs import contents, names, service

OWNER = "admin"
ATTRIBUTES = ("namespace", "display_name", "description", "visibility", "protected", "owner")
LISTS = {"resource_type_associations": "name", "objects": "name", "tags": "name"}


@dataclasses.dataclass(frozen=True)
class Loaded:
    """What :func:`load` did: the namespaces it wrote, and those it left as they were."""

    loaded: tuple[str, ...]
    skipped: tuple[str, ...]


def load(db: engine.Database, directory: pathlib.Path, overwrite: bool = False) -> Loaded:
    """Load every ``*.json`` file of ``directory`` (or the one file it names).

    BadRequest, naming the file and what is wrong, when any file cannot be loaded; then
    nothing is.
    """
    documents = [(path, _read(path)) for path in _files(directory)]
    _unique(documents)
    loaded: list[str] = []
    skipped: list[str] = []
    with contents.unique_names(db) as session:
        for path, document in documents:
            name = document["namespace"]
            existing = rows.namespace_exists(session, name)
            if existing and not overwrite:
                skipped.append(name)
                continue
            if existing:
                session.delete(_namespace(session, name))
                session.flush()
            try:
                _create(session, document)
            except errors.GlintError as exc:
                raise errors.BadRequest(f"{path}: {exc.message}") from None
            loaded.append(name)
    return Loaded(tuple(loaded), tuple(skipped))


def export(db: engine.Database, directory: pathlib.Path) -> list[pathlib.Path]:
    """Write each namespace to ``directory`` as ``<namespace>.json`` (its name with what a
    file name should not hold replaced by ``-``); returns the files, replacing any there."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[pathlib.Path] = []
    with db.reader() as session:
        query = sa.select(models.MetadefNamespace).order_by(models.MetadefNamespace.namespace)
        for ns in session.scalars(query):
            path = _free_name(directory, ns.namespace, written)
            path.write_text(json.dumps(document(session, ns), indent=4, ensure_ascii=False)
                            + "\n", encoding="utf-8")
            written.append(path)
    return written


def document(session: orm.Session, ns: models.MetadefNamespace) -> dict[str, Any]:
    """The namespace as a file holds it (attributes left unset are left out)."""
    body: dict[str, Any] = {key: getattr(ns, key) for key in ATTRIBUTES
                            if getattr(ns, key) is not None}
    body["resource_type_associations"] = [
        _present({"name": name, "prefix": row.prefix, "properties_target": row.properties_target})
        for row, name in rows.associations(session, [ns.id])]
    body["properties"] = {row.name: row.json_schema
                          for row in rows.children(session, models.MetadefProperty, ns.id)}
    body["objects"] = [
        _present({"name": row.name, "description": row.description,
                  "required": row.required, "properties": row.properties})
        for row in rows.children(session, models.MetadefObject, ns.id)]
    body["tags"] = [{"name": row.name}
                    for row in rows.children(session, models.MetadefTag, ns.id)]
    return {key: value for key, value in body.items() if value not in ([], {})}


# -- loading ----------------------------------------------------------------------------


def _files(directory: pathlib.Path) -> list[pathlib.Path]:
    if directory.is_file():
        return [directory]
    if not directory.is_dir():
        raise errors.BadRequest(f"{directory} is neither a directory nor a file")
    found = sorted(p for p in directory.iterdir() if p.suffix == ".json" and p.is_file())
    if not found:
        raise errors.BadRequest(f"{directory} holds no .json files")
    return found


def _read(path: pathlib.Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise errors.BadRequest(f"{path}: cannot be read as JSON: {exc}") from None
    problem = _shape_problem(document)
    if problem is not None:
        raise errors.BadRequest(f"{path}: {problem}")
    return dict(document)


def _shape_problem(document: Any) -> str | None:
    """What keeps ``document`` from being a namespace file, or None."""
    if not isinstance(document, dict):
        return "not a JSON object"
    if not isinstance(document.get("namespace"), str):
        return "'namespace' (a string) is missing"
    for key, member in LISTS.items():
        items = document.get(key, [])
        if not isinstance(items, list) or not all(
                isinstance(item, dict) and isinstance(item.get(member), str) for item in items):
            return f"'{key}' must be a list of objects, each with a '{member}' string"
    properties = document.get("properties", {})
    if not isinstance(properties, dict) or not all(isinstance(v, dict)
                                                   for v in properties.values()):
        return "'properties' must map each property name to its definition (an object)"
    if not isinstance(document.get("protected", False), bool):
        return "'protected' must be true or false"
    if document.get("visibility", "public") not in ("public", "private"):
        return "'visibility' must be 'public' or 'private'"
    return None


def _unique(documents: Sequence[tuple[pathlib.Path, Mapping[str, Any]]]) -> None:
    seen: dict[str, pathlib.Path] = {}
    for path, document in documents:
        name = document["namespace"]
        if name in seen:
            raise errors.BadRequest(f"{path}: namespace {name!r} is in {seen[name]} too")
        seen[name] = path


def _create(session: orm.Session, document: Mapping[str, Any]) -> None:
    ns = models.MetadefNamespace(
        namespace=names.check(document["namespace"], "namespace"),
        display_name=document.get("display_name"), description=document.get("description"),
        visibility=document.get("visibility", "public"),
        protected=document.get("protected", False), owner=document.get("owner") or OWNER)
    session.add(ns)
    session.flush()
    for association in document.get("resource_type_associations", []):
        service.associate(session, ns, association, protected=True)
    contents.add_all(session, ns, dict(document))


def _namespace(session: orm.Session, name: str) -> models.MetadefNamespace:
    found = rows.namespace(session, RequestContext.admin(), name, for_update=True)
    assert found is not None, name
    return found


# -- exporting --------------------------------------------------------------------------


def _free_name(directory: pathlib.Path, namespace: str,
               taken: Sequence[pathlib.Path]) -> pathlib.Path:
    stem = re.sub(r"[^A-Za-z0-9_.]+", "-", namespace).strip("-.") or "namespace"
    path, number = directory / f"{stem}.json", 1
    while path in taken:
        number += 1
        path = directory / f"{stem}-{number}.json"
    return path


def _present(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}
