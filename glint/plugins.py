"""Loading a named plugin from one of glint's stevedore namespaces."""

from __future__ import annotations

from typing import Any

from stevedore import driver, exception

from glint import errors


def load(namespace: str, name: str) -> Any:
    """The class (or object) registered as ``name`` in ``namespace``."""
    try:
        manager: driver.DriverManager[Any] = driver.DriverManager(namespace, name, invoke_on_load=False)
    except exception.NoMatches:
        raise errors.ConfigurationError(
            f"no {namespace.rsplit('.', 1)[-1][:-1]} named {name!r} is installed "
            f"(entry-point namespace {namespace})") from None
    return manager.driver
