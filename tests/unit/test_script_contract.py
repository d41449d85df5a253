"""The script contract stands alone: what it declares agrees with glint's own definitions, and
the settings it lends are the ones scripts read, nothing secret."""

from __future__ import annotations

import dataclasses
import pathlib

from glint.images import service as images
from glint.images import states as image_states
from glint.scripts import contract
from glint.settings import Settings
from glint.tasks import states as task_states


def test_image_data_is_the_image_services() -> None:
    """One definition: what a script records is what the image service takes."""
    assert images.ImageData is contract.ImageData
    assert "store" in {f.name for f in dataclasses.fields(images.ImageData)}


def test_the_statuses_it_names_are_glints() -> None:
    for name in ("QUEUED", "SAVING", "UPLOADING", "IMPORTING", "ACTIVE"):
        assert getattr(contract.ImageStatus, name) == getattr(image_states, name)
    assert {contract.TaskStatus.PENDING, contract.TaskStatus.PROCESSING,
            contract.TaskStatus.SUCCESS, contract.TaskStatus.FAILURE} == set(task_states.STATUSES)


def test_script_settings_are_read_from_glints_under_the_same_names(
        tmp_path: pathlib.Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="postgresql://glint:secret@db/glint",
                        hashing_algorithm="sha256", import_timeout=7.5)
    lent = contract.ScriptSettings.from_settings(settings)
    assert (lent.hashing_algorithm, lent.import_timeout) == ("sha256", 7.5)
    assert lent.effective_work_dir == settings.effective_work_dir
    assert "secret" not in repr(lent)
    assert not [f.name for f in dataclasses.fields(contract.ScriptSettings)
                if any(word in f.name for word in ("url", "password", "secret", "token",
                                                   "keystone", "key"))]
