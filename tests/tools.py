"""Command-line tools some tests need. `make test` installs them; in CI a missing one fails."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def unavailable(message: str) -> NoReturn:
    """A test cannot run here: skipped on a developer's machine, failed in CI (where `make test`
    provides everything, so a skip would hide a broken set-up)."""
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


# Outside CI a developer without qemu-img sees these tests skipped; in CI (where `make test`
# installs Debian's qemu-utils) they run, and fail if it is missing.
needs_qemu_img = pytest.mark.skipif(
    shutil.which("qemu-img") is None and not in_ci(),
    reason="qemu-img (Debian's qemu-utils) is not installed; `make test` installs it")


def require_qemu_img() -> None:
    """Skip (outside CI) or fail (in CI) the calling test or fixture without qemu-img."""
    if shutil.which("qemu-img") is None:
        unavailable("qemu-img (Debian's qemu-utils) is not installed; `make test` installs it")


def require_chromium() -> tuple[str, str]:
    """Debian's chromium and its chromedriver (paths); skip (outside CI) or fail (in CI)
    without them."""
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        unavailable("chromium and chromedriver (Debian's chromium, chromium-driver) are not "
                    "installed; `make test` installs them")
    return browser, driver
