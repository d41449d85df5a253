"""The test kit for script authors (``glint.testing``)."""

from __future__ import annotations

import hashlib
import pathlib
import types
from typing import Any

import pytest

from glint import errors, testing
from glint.context import RequestContext
from glint.scripts.contract import ScriptContext
from glint.stores.filesystem import FilesystemStore
from glint.testing import ScriptHarness

DATA = b"0123456789" * 1000
script_harness = testing.script_harness  # the kit's fixture, as `pytest_plugins` would offer it


def _echo_module() -> types.ModuleType:
    """A script module, as a package would ship one."""
    module = types.ModuleType("acme.glint_scripts.echo")
    module.INPUT_SCHEMA = {"type": "object", "required": ["say"]}  # type: ignore[attr-defined]

    def main(ctx: ScriptContext) -> dict[str, Any]:
        ctx.report_progress(1, 1)
        return {"said": ctx.task_input["say"], "by": ctx.request_context.project_id}

    module.main = main  # type: ignore[attr-defined]
    return module


def test_a_harness_makes_images_as_an_upload_would(script_harness: ScriptHarness) -> None:
    image = script_harness.create_image(data=DATA, name="demo", os_distro="debian")
    assert (image["status"], image["name"], image["os_distro"]) == ("active", "demo", "debian")
    assert (image["disk_format"], image["container_format"]) == ("raw", "bare")
    assert (image["size"], image["checksum"], image["os_hash_value"]) == (
        len(DATA), hashlib.md5(DATA).hexdigest(), hashlib.sha512(DATA).hexdigest())
    assert image["owner"] == "test-project"
    assert script_harness.image_data(image["id"]) == DATA
    assert script_harness.event_types() == ["image.create", "image.update", "image.update",
                                            "image.activate"]

    queued = script_harness.create_image(disk_format="qcow2")
    assert (queued["status"], queued["size"]) == ("queued", None)
    assert script_harness.location(queued["id"]) is None
    assert script_harness.image_data(queued["id"]) == b""
    assert [i["id"] for i in script_harness.images()] == [image["id"], queued["id"]]


def test_run_takes_a_script_module_and_serves_it(script_harness: ScriptHarness) -> None:
    echo = _echo_module()
    task = script_harness.run(echo, {"say": "hello"})
    assert (task["type"], task["status"], task["result"]) == (
        "echo", "success", {"said": "hello", "by": "test-project"})
    again = script_harness.run(echo, {"say": "again"})  # now served: no second registration
    assert again["type"] == "echo"
    assert script_harness.task(task["id"])["result"]["said"] == "hello"


def test_run_takes_an_installed_task_type(script_harness: ScriptHarness) -> None:
    image = script_harness.create_image(data=DATA)
    task = script_harness.run("clone", {"image_id": image["id"]})
    assert task["status"] == "success", task["message"]
    assert script_harness.image_data(task["result"]["image_id"]) == DATA


def test_input_refused_at_create_time_raises_bad_request(script_harness: ScriptHarness) -> None:
    with pytest.raises(errors.BadRequest, match="'say' is a required property"):
        script_harness.run(_echo_module(), {})
    with pytest.raises(errors.BadRequest, match="Task type 'nope' is not one of"):
        script_harness.run("nope", {})


def test_scripts_and_contexts_are_chosen_per_harness_and_per_call(tmp_path: pathlib.Path) -> None:
    echo = _echo_module()
    other = RequestContext(user_id="u", project_id="p2", roles=("member",))
    with ScriptHarness(tmp_path / "h", scripts={"shout": echo},
                       store=FilesystemStore(tmp_path / "images")) as harness:
        task = harness.run("shout", {"say": "hi"}, ctx=other)
        assert task["result"] == {"said": "hi", "by": "p2"}
        with pytest.raises(errors.NotFound):
            harness.task(task["id"])  # another project's task
        image = harness.create_image(data=DATA)
        assert (tmp_path / "images" / str(harness.location(image["id"]))).read_bytes() == DATA
    assert (tmp_path / "h" / "glint.db").exists()  # a directory it was given is kept


def test_a_harness_without_a_directory_cleans_up() -> None:
    with ScriptHarness() as harness:
        directory = harness.directory
        assert (directory / "glint.db").exists()
    assert not directory.exists()


def test_a_failing_script_fails_its_task(script_harness: ScriptHarness) -> None:
    def main(ctx: ScriptContext) -> dict[str, Any]:
        raise errors.ScriptError("nothing to do")

    task = script_harness.run(types.SimpleNamespace(main=main, __name__="failing"), {})
    assert (task["type"], task["status"], task["message"]) == (
        "failing", "failure", "nothing to do")
    assert script_harness.event_types()[-1] == "task.failure"
    assert script_harness.notifier.events[-1].priority == "ERROR"


def test_scripts_read_an_image_in_whichever_store_holds_it(tmp_path: pathlib.Path) -> None:
    from glint.stores.memory import MemoryStore

    stores = {"fast": MemoryStore(), "cheap": FilesystemStore(tmp_path / "cheap")}
    exports = tmp_path / "exports"
    exports.mkdir()
    with ScriptHarness(tmp_path / "glint", stores=stores,
                       export_allowed_dirs=(exports,)) as harness:
        image = harness.create_image(DATA, store="cheap")  # not the default store
        assert harness.store_of(image["id"]) is stores["cheap"] and not stores["fast"].blobs
        assert harness.image_data(image["id"]) == DATA

        clone = harness.run("clone", {"image_id": image["id"]})
        assert clone["status"] == "success", clone["message"]
        assert harness.store_of(clone["result"]["image_id"]) is stores["cheap"]
        assert harness.image_data(clone["result"]["image_id"]) == DATA

        target = exports / "disk.raw"
        export = harness.run("export", {"image_id": image["id"], "export_to": target.as_uri()})
        assert export["status"] == "success", export["message"]
        assert target.read_bytes() == DATA

        verify = harness.run("verify", {"image_id": image["id"]})
        assert (verify["status"], verify["result"]["verified"]) == ("success", True)

        stores["cheap"].delete(harness.location(image["id"]) or "")
        lost = harness.run("clone", {"image_id": image["id"]})
        assert lost["message"] == (f"Cannot clone image {image['id']}: its data is missing "
                                   "from every store")


def test_a_script_writes_to_a_store_it_names(tmp_path: pathlib.Path) -> None:
    from glint import datapath
    from glint.images import states
    from glint.scripts import db_api
    from glint.stores.memory import MemoryStore

    module = types.ModuleType("acme.glint_scripts.archive")

    def main(ctx: ScriptContext) -> dict[str, Any]:
        image_id = ctx.db_api.create_image({"disk_format": "raw", "container_format": "bare"})["id"]
        ctx.db_api.set_image_status(image_id, states.IMPORTING, expected=states.QUEUED)
        with ctx.stores.backend("cold").writer(image_id) as writer:
            digest = datapath.copy([DATA], writer, size_cap=len(DATA), hash_algo="sha512")
            location = writer.commit()
        ctx.db_api.set_image_data(image_id, db_api.ImageData(
            location=location, size=digest.size, checksum=digest.checksum,
            os_hash_algo="sha512", os_hash_value=digest.hash_value, store="cold"),
            from_status=states.IMPORTING)
        return {"image_id": image_id}

    module.main = main  # type: ignore[attr-defined]
    stores = {"hot": MemoryStore(), "cold": MemoryStore()}
    with ScriptHarness(tmp_path / "glint", stores=stores) as harness:
        task = harness.run(module, {})
        assert task["status"] == "success", task["message"]
        image = harness.image(task["result"]["image_id"])
        assert image["status"] == "active" and harness.store_of(image["id"]) is stores["cold"]
        assert harness.image_data(image["id"]) == DATA and not stores["hot"].blobs
