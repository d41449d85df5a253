"""Finding and validating scripts: the only list of task types glint has."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jsonschema
from stevedore import extension

from glint import errors
from glint.scripts import contract

LOG = logging.getLogger(__name__)
NAMESPACE = "glint.task_scripts"


@dataclasses.dataclass(frozen=True)
class LoadedScript:
    """A script that passed validation, ready to run."""

    type: str
    package: str
    version: str
    description: str
    main: Callable[[contract.ScriptContext], contract.JsonObject]
    input_schema: Mapping[str, Any] | None
    validate: Callable[..., None] | None
    cleanup: Callable[[contract.ScriptContext], None] | None = None

    def check_input(self, task_input: Any) -> None:
        """Check ``task_input`` against the script's schema (400 with the reason)."""
        if self.input_schema is None:
            return
        validator = jsonschema.Draft202012Validator(self.input_schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(task_input))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path)
            place = f" at 'input/{where}'" if where else ""
            raise errors.BadRequest(f"Invalid input for task type '{self.type}'{place}: {error.message}")


@dataclasses.dataclass(frozen=True)
class BrokenScript:
    """A script that is installed but not served, with the reason."""

    type: str
    package: str
    reason: str


class Registry:
    """Task types known to this glint: loaded, validated and broken ones."""

    def __init__(self, scripts: Mapping[str, LoadedScript], broken: Mapping[str, BrokenScript]):
        self._scripts = dict(scripts)
        self._broken = dict(broken)

    @classmethod
    def load(cls, namespace: str = NAMESPACE) -> Registry:
        """Load every script in ``namespace``, logging and skipping the ones that fail."""
        scripts: dict[str, LoadedScript] = {}
        broken: dict[str, BrokenScript] = {}

        def on_failure(_manager: Any, entry_point: Any, exc: BaseException) -> None:
            broken[entry_point.name] = _broken(entry_point, f"import failed: {exc!r}")

        manager = extension.ExtensionManager(
            namespace, invoke_on_load=False, on_load_failure_callback=on_failure)
        for ext in manager:
            try:
                scripts[ext.name] = validate(ext.name, ext.plugin, ext.entry_point)
            except errors.ScriptLoadError as exc:
                broken[ext.name] = _broken(ext.entry_point, exc.message)
        for item in broken.values():
            LOG.error("task script %r from %s is not served: %s", item.type, item.package, item.reason)
        return cls(scripts, broken)

    @classmethod
    def of(cls, scripts: Mapping[str, Any]) -> Registry:
        """A registry built from objects directly (tests, embedding)."""
        return cls({name: validate(name, obj, None) for name, obj in scripts.items()}, {})

    def get(self, task_type: str) -> LoadedScript:
        try:
            return self._scripts[task_type]
        except KeyError:
            raise errors.NotFound(f"No script for task type '{task_type}'") from None

    def __contains__(self, task_type: object) -> bool:
        return task_type in self._scripts

    def __iter__(self) -> Iterator[LoadedScript]:
        return iter(sorted(self._scripts.values(), key=lambda s: s.type))

    @property
    def types(self) -> list[str]:
        return sorted(self._scripts)

    @property
    def broken(self) -> list[BrokenScript]:
        return sorted(self._broken.values(), key=lambda s: s.type)


def validate(name: str, obj: Any, entry_point: Any) -> LoadedScript:
    """Check one script against the contract; raise ScriptLoadError saying what is wrong."""
    version = getattr(obj, "CONTRACT_VERSION", contract.CONTRACT_VERSION)
    if version not in contract.SUPPORTED_CONTRACT_VERSIONS:
        raise errors.ScriptLoadError(f"contract version {version!r} is not supported "
                                     f"(supported: {sorted(contract.SUPPORTED_CONTRACT_VERSIONS)})")
    main = getattr(obj, "main", None)
    if not callable(main):
        raise errors.ScriptLoadError("it has no callable 'main(ctx)'")
    schema = getattr(obj, "INPUT_SCHEMA", None)
    if schema is not None:
        _check_schema(schema)
    check = getattr(obj, "validate", None)
    if check is not None and not callable(check):
        raise errors.ScriptLoadError("'validate' is not callable")
    cleanup = getattr(obj, "cleanup", None)
    if cleanup is not None and not callable(cleanup):
        raise errors.ScriptLoadError("'cleanup' is not callable")
    package, pkg_version = _distribution(entry_point)
    return LoadedScript(type=name, package=package, version=pkg_version,
                        description=str(getattr(obj, "DESCRIPTION", "") or ""),
                        main=main, input_schema=schema, validate=check, cleanup=cleanup)


def _check_schema(schema: Any) -> None:
    if not isinstance(schema, Mapping):
        raise errors.ScriptLoadError("INPUT_SCHEMA is not a JSON object")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        raise errors.ScriptLoadError(f"INPUT_SCHEMA is not a valid JSON schema: {exc.message}") from exc


def _distribution(entry_point: Any) -> tuple[str, str]:
    """The installed package (name, version) that declares ``entry_point``."""
    if entry_point is None:
        return ("(unregistered)", "")
    dist = getattr(entry_point, "dist", None)
    if dist is not None:
        return (dist.name, dist.version)
    # stevedore's cached entry points carry no distribution: look it up.
    for candidate in importlib.metadata.distributions():
        for ep in candidate.entry_points:
            if (ep.group, ep.name, ep.value) == (entry_point.group, entry_point.name,
                                                 entry_point.value):
                return (candidate.metadata["Name"], candidate.version)
    return ("(unknown)", "")


def _broken(entry_point: Any, reason: str) -> BrokenScript:
    return BrokenScript(type=entry_point.name, package=_distribution(entry_point)[0], reason=reason)
