"""Checking a real response against what the OpenAPI document says about it."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import referencing
import referencing.jsonschema
from starlette.routing import Route

from glint.api.routing import Resource

DOCUMENT_URI = "urn:glint:openapi"


def served(routes: list[Any]) -> set[tuple[str, str]]:
    """``(method, path)`` of every operation the Starlette app registers."""
    pairs = set()
    for route in routes:
        assert isinstance(route, Route) and isinstance(route.app, Resource), route
        pairs.update((method.lower(), route.path) for method in route.app.handlers)
    return pairs


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, item in doc["paths"].items()
            for method in ("get", "put", "post", "delete", "patch") if method in item}


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow an OpenAPI ``$ref`` to a component (responses and parameters are not schemas)."""
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def template_of(doc: dict[str, Any], path: str) -> str:
    """The documented path template ``path`` matches."""
    for template in doc["paths"]:
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", template)
        if re.fullmatch(pattern, path):
            return template
    raise AssertionError(f"{path} matches no documented path")


def check(doc: dict[str, Any], method: str, path: str, response: Any) -> None:
    """``response`` has a documented status, content type, required headers and body shape."""
    operation = doc["paths"][template_of(doc, path)][method.lower()]
    status = str(response.status_code)
    assert status in operation["responses"], f"{method} {path}: {status} is not documented"
    declared = resolve(doc, operation["responses"][status])
    for name, header in declared.get("headers", {}).items():
        header = resolve(doc, header)
        if header.get("required"):
            assert name.lower() in response.headers, f"{method} {path} {status}: no {name}"
        if name.lower() in response.headers and "pattern" in header["schema"]:
            assert re.search(header["schema"]["pattern"], response.headers[name.lower()])
    content = declared.get("content")
    if not content:
        assert response.content == b"", f"{method} {path} {status}: unexpected body"
        return
    media_type = response.headers["content-type"].split(";")[0]
    assert media_type in content, f"{method} {path} {status}: {media_type} not documented"
    if media_type == "application/json":
        validate(doc, content[media_type]["schema"], response.json())


def validate(doc: dict[str, Any], schema: dict[str, Any], instance: Any) -> None:
    resource = referencing.Resource.from_contents(
        doc, default_specification=referencing.jsonschema.DRAFT202012)
    registry: referencing.Registry[Any] = referencing.Registry().with_resource(DOCUMENT_URI,
                                                                              resource)
    rooted = _rooted(schema)
    jsonschema.Draft202012Validator(rooted, registry=registry,
                                    format_checker=jsonschema.FormatChecker()).validate(instance)


def _rooted(node: Any) -> Any:
    """``schema`` with its local ``#/...`` references pointing into the whole document."""
    if isinstance(node, dict):
        return {k: (DOCUMENT_URI + v if k == "$ref" and v.startswith("#") else _rooted(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_rooted(item) for item in node]
    return node
