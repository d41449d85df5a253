"""Every settings example in the object-store how-tos loads: a reader can copy any of them."""

from __future__ import annotations

import os
import pathlib
import re
import tomllib

import pytest

from glint import settings

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs" / "how-to"
GUIDES = ("swift.md", "s3.md")


def _toml_blocks(name: str) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", (DOCS / name).read_text(), flags=re.S)


@pytest.mark.parametrize("guide", GUIDES)
def test_every_toml_example_is_valid_settings(guide: str, tmp_path: pathlib.Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _toml_blocks(guide)
    assert len(blocks) >= 2
    for key in [k for k in os.environ if k.startswith("GLINT_")]:
        monkeypatch.delenv(key)
    for number, block in enumerate(blocks):
        path = tmp_path / f"{number}.toml"
        path.write_text(block)
        monkeypatch.setenv(settings.CONFIG_ENV, str(path))
        loaded = settings.load()
        assert tomllib.loads(block).keys() <= loaded.model_dump().keys()
