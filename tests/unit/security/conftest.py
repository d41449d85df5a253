"""Fixtures for the adversarial corpus (corpus.py): built once per session, with qemu-img."""

from __future__ import annotations

import pathlib

import pytest

from glint import gate
from tests.tools import require_qemu_img
from tests.unit.security import corpus


@pytest.fixture(scope="session")
def cases(tmp_path_factory: pytest.TempPathFactory) -> list[corpus.Case]:
    require_qemu_img()
    return corpus.build(tmp_path_factory.mktemp("corpus"))


@pytest.fixture
def image_gate(tmp_path: pathlib.Path) -> gate.ImageGate:
    return gate.ImageGate(vmdk_allowed_types=("streamOptimized", "monolithicSparse"),
                          size_cap=1 << 40, work_dir=tmp_path)
