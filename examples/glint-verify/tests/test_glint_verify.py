"""The verify script, run through a real (in-memory) glint by glint's test kit."""

from __future__ import annotations

import hashlib

import glint_verify
import pytest

from glint import errors
from glint.context import RequestContext
from glint.stores.memory import MemoryStore
from glint.testing import ScriptHarness

DATA = b"a disk image, or something like one\n" * 1000


def test_an_intact_image_verifies(script_harness: ScriptHarness) -> None:
    image = script_harness.create_image(data=DATA, name="intact")

    task = script_harness.run(glint_verify, {"image_id": image["id"]})

    assert (task["status"], task["message"]) == ("success", "")
    assert task["result"] == {
        "image_id": image["id"], "verified": True, "size": len(DATA),
        "checksum": hashlib.md5(DATA).hexdigest(), "os_hash_algo": "sha512",
        "os_hash_value": hashlib.sha512(DATA).hexdigest()}
    assert script_harness.event_types()[-2:] == ["task.processing", "task.success"]


def test_damaged_data_fails_naming_what_differs(script_harness: ScriptHarness) -> None:
    image = script_harness.create_image(data=DATA)
    store = script_harness.store
    assert isinstance(store, MemoryStore)
    location = script_harness.location(image["id"])
    assert location is not None
    store.blobs[location] = DATA.replace(b"disk", b"DISK", 1)  # same size, other bytes

    task = script_harness.run(glint_verify, {"image_id": image["id"]})

    assert task["status"] == "failure"
    assert task["message"] == (f"Image {image['id']} does not match its record: "
                               "checksum (md5), os_hash_value (sha512) differ")


def test_truncated_data_fails_on_size(script_harness: ScriptHarness) -> None:
    image = script_harness.create_image(data=DATA)
    store = script_harness.store
    assert isinstance(store, MemoryStore)
    store.blobs[str(script_harness.location(image["id"]))] = DATA[:-1]

    task = script_harness.run("verify", {"image_id": image["id"]})  # the installed entry point

    assert task["status"] == "failure"
    assert "size, checksum (md5), os_hash_value (sha512) differ" in task["message"]


def test_an_image_without_data_cannot_be_verified(script_harness: ScriptHarness) -> None:
    image = script_harness.create_image()  # queued: no data

    task = script_harness.run(glint_verify, {"image_id": image["id"]})

    assert task["status"] == "failure"
    assert task["message"] == (f"Cannot verify image {image['id']}: it is queued "
                               "and has no data to check")


def test_another_projects_private_image_is_not_found(script_harness: ScriptHarness) -> None:
    image = script_harness.create_image(data=DATA, visibility="private")
    stranger = RequestContext(user_id="eve", project_id="elsewhere", roles=("member",))

    task = script_harness.run(glint_verify, {"image_id": image["id"]}, ctx=stranger)

    assert task["status"] == "failure"
    assert task["message"] == f"Cannot verify: No image found with ID {image['id']}"


def test_input_is_checked_when_the_task_is_created(script_harness: ScriptHarness) -> None:
    with pytest.raises(errors.BadRequest, match="at 'input/image_id': 'nope' is too short"):
        script_harness.run(glint_verify, {"image_id": "nope"})


def test_other_hashing_algorithms() -> None:
    with ScriptHarness(hashing_algorithm="sha256") as harness:
        image = harness.create_image(data=DATA)
        task = harness.run(glint_verify, {"image_id": image["id"]})
    assert task["result"]["os_hash_algo"] == "sha256"
    assert task["result"]["os_hash_value"] == hashlib.sha256(DATA).hexdigest()
