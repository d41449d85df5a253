"""The images write API and sharing, driven by the real `glance` CLI and openstacksdk.

The CLI and the SDK act as the server's default project (``demo``); a second project talks
plain HTTP with identity headers. Every test reads back what the server stored.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import GlanceCli, Server

pytestmark = pytest.mark.acceptance

DEMO = "demo"  # the default project of `glint serve`
OTHER = {"X-Project-Id": "other", "X-User-Id": "other-user", "X-Roles": "member,reader"}
PATCH = "application/openstack-images-v2.1-json-patch"


def api(server: Server, method: str, path: str, headers: dict[str, str] | None = None,
        **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{server.url}{path}", headers=headers, timeout=30, **kwargs)


def stored(server: Server, image_id: str, headers: dict[str, str] | None = None) -> Any:
    response = api(server, "GET", f"/v2/images/{image_id}", headers)
    assert response.status_code == 200, response.text
    return response.json()


def table_rows(text: str) -> list[dict[str, str]]:
    """The rows of a table with a header line (``image-list``, ``member-list``)."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
            for line in lines[1:]]


def listed_ids(glance: GlanceCli, *args: str) -> list[str]:
    return [row["ID"] for row in table_rows(glance("image-list", *args).stdout)]


def new_tag() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def test_image_create_without_file(glance: GlanceCli, glint_server: Server) -> None:
    tag = new_tag()
    shown = glance.table("image-create", "--name", "cli-create", "--disk-format", "qcow2",
                         "--container-format", "bare", "--min-ram", "64",
                         "--property", "os_distro=cirros", "--tags", tag, close_stdin=True)
    assert shown["status"] == "queued"
    image = stored(glint_server, shown["id"])
    assert image["name"] == "cli-create"
    assert image["status"] == "queued"
    assert (image["disk_format"], image["container_format"]) == ("qcow2", "bare")
    assert image["min_ram"] == 64
    assert image["os_distro"] == "cirros"
    assert image["tags"] == [tag]
    assert image["owner"] == DEMO
    assert image["visibility"] == "shared"
    assert image["size"] is None and image["checksum"] is None


def test_image_update_properties_and_tags(glance: GlanceCli, glint_server: Server) -> None:
    image_id = glance.table("image-create", "--name", "before", "--property", "old=1",
                            "--tags", "first", close_stdin=True)["id"]

    shown = glance.table("image-update", image_id, "--name", "after", "--min-disk", "2",
                         "--property", "foo=bar", "--property", "old=2", "--hidden", "True")
    assert shown["name"] == "after"
    image = stored(glint_server, image_id)
    assert (image["name"], image["min_disk"], image["foo"], image["old"], image["os_hidden"]) == (
        "after", 2, "bar", "2", True)
    assert image["tags"] == ["first"]  # glanceclient re-sends the tags as a whole list

    glance("image-update", image_id, "--remove-property", "foo", "--hidden", "False")
    image = stored(glint_server, image_id)
    assert "foo" not in image and image["old"] == "2" and image["os_hidden"] is False

    glance("image-tag-update", image_id, "second")
    glance("image-tag-delete", image_id, "first")
    assert stored(glint_server, image_id)["tags"] == ["second"]

    refused = glance("image-update", image_id, "--visibility", "public", check=False)
    assert refused.returncode != 0
    assert "publicize_image" in refused.stderr
    refused = glance("image-tag-delete", image_id, "never-there", check=False)
    assert refused.returncode != 0
    image = stored(glint_server, image_id)
    assert (image["visibility"], image["tags"], image["name"]) == ("shared", ["second"], "after")


def test_image_list_filters_and_paging(glance: GlanceCli, glint_server: Server) -> None:
    tag = new_tag()
    created = {}
    for i, name in enumerate(["e", "c", "a", "d", "b"]):
        body = {"name": f"{tag}-{name}", "tags": [tag], "parity": "even" if i % 2 == 0 else "odd"}
        if name == "a":
            body["visibility"] = "private"
        response = api(glint_server, "POST", "/v2/images", json=body)
        assert response.status_code == 201, response.text
        created[name] = response.json()["id"]

    # five images, two per page: the client follows `next` twice
    paged = listed_ids(glance, "--page-size", "2", "--tag", tag, "--sort-key", "name",
                       "--sort-dir", "asc")
    assert paged == [created[n] for n in "abcde"]
    assert listed_ids(glance, "--page-size", "2", "--tag", tag, "--sort", "name:desc") == [
        created[n] for n in "edcba"]
    assert listed_ids(glance, "--limit", "3", "--page-size", "2", "--tag", tag,
                      "--sort-key", "name", "--sort-dir", "asc") == [created[n] for n in "abc"]
    even = listed_ids(glance, "--tag", tag, "--property-filter", "parity=even")
    assert sorted(even) == sorted(created[n] for n in "eab")
    assert listed_ids(glance, "--tag", tag, "--visibility", "private") == [created["a"]]
    assert listed_ids(glance, "--tag", tag, "--owner", "nobody") == []
    # and the server agrees on what it stored
    listing = api(glint_server, "GET", f"/v2/images?tag={tag}&limit=2&sort=name:asc").json()
    assert [i["name"] for i in listing["images"]] == [f"{tag}-a", f"{tag}-b"]
    assert "next" in listing


def test_image_delete(glance: GlanceCli, glint_server: Server) -> None:
    image_id = glance.table("image-create", "--name", "doomed", close_stdin=True)["id"]
    glance("image-delete", image_id)
    assert api(glint_server, "GET", f"/v2/images/{image_id}").status_code == 404
    assert image_id not in listed_ids(glance, "--visibility", "all")

    kept = glance.table("image-create", "--name", "kept", "--protected", "True",
                        close_stdin=True)["id"]
    refused = glance("image-delete", kept, check=False)
    assert refused.returncode != 0
    assert "not permitted" in refused.stderr  # glanceclient's words for any 403 here
    assert stored(glint_server, kept)["status"] == "queued"
    glance("image-update", kept, "--protected", "False")
    glance("image-delete", kept)
    assert api(glint_server, "GET", f"/v2/images/{kept}").status_code == 404


def test_members_between_two_projects(glance: GlanceCli, glint_server: Server) -> None:
    # demo shares with other
    image_id = glance.table("image-create", "--name", "shared-out", close_stdin=True)["id"]
    assert api(glint_server, "GET", f"/v2/images/{image_id}", OTHER).status_code == 404
    glance("member-create", image_id, "other")
    rows = table_rows(glance("member-list", "--image-id", image_id).stdout)
    assert [(r["Member ID"], r["Status"]) for r in rows] == [("other", "pending")]
    assert stored(glint_server, image_id, OTHER)["name"] == "shared-out"
    assert image_id not in {i["id"] for i in api(glint_server, "GET", "/v2/images",
                                                  OTHER).json()["images"]}
    # only the member sets its status
    refused = glance("member-update", image_id, "other", "accepted", check=False)
    assert refused.returncode != 0
    response = api(glint_server, "PUT", f"/v2/images/{image_id}/members/other", OTHER,
                   json={"status": "accepted"})
    assert response.status_code == 200, response.text
    rows = table_rows(glance("member-list", "--image-id", image_id).stdout)
    assert [(r["Member ID"], r["Status"]) for r in rows] == [("other", "accepted")]
    assert image_id in {i["id"] for i in api(glint_server, "GET", "/v2/images",
                                             OTHER).json()["images"]}
    # other shares with demo, and demo accepts with the CLI
    theirs = api(glint_server, "POST", "/v2/images", OTHER, json={"name": "shared-in"}).json()
    assert api(glint_server, "POST", f"/v2/images/{theirs['id']}/members", OTHER,
               json={"member": DEMO}).status_code == 200
    assert theirs["id"] not in listed_ids(glance)
    glance("member-update", theirs["id"], DEMO, "accepted")
    assert theirs["id"] in listed_ids(glance)
    members = api(glint_server, "GET", f"/v2/images/{theirs['id']}/members", OTHER).json()
    assert [(m["member_id"], m["status"]) for m in members["members"]] == [(DEMO, "accepted")]
    # demo may not change other's image, nor share it further
    refused = glance("image-update", theirs["id"], "--name", "mine", check=False)
    assert refused.returncode != 0
    assert glance("member-create", theirs["id"], "third", check=False).returncode != 0
    assert stored(glint_server, theirs["id"], OTHER)["name"] == "shared-in"
    # the owner stops sharing
    glance("member-delete", image_id, "other")
    assert api(glint_server, "GET", f"/v2/images/{image_id}", OTHER).status_code == 404
    assert table_rows(glance("member-list", "--image-id", image_id).stdout) == []


def test_openstacksdk_images_and_delete_image(sdk: Any, glint_server: Server) -> None:
    tag = new_tag()
    ids = []
    for i in range(3):
        response = api(glint_server, "POST", "/v2/images",
                       json={"name": f"sdk-{i}", "tags": [tag], "flavour": str(i)})
        ids.append(response.json()["id"])
    found = list(sdk.image.images(tag=tag, limit=2, sort_key="name", sort_dir="asc"))
    assert [image.id for image in found] == ids
    assert [image.name for image in found] == ["sdk-0", "sdk-1", "sdk-2"]
    assert found[0].owner == DEMO and found[0].tags == [tag]
    assert [image.id for image in sdk.image.images(tag=tag, name="sdk-1")] == [ids[1]]

    updated = sdk.image.update_image(ids[0], name="sdk-renamed", flavour="x")
    assert updated.name == "sdk-renamed"
    assert stored(glint_server, ids[0])["flavour"] == "x"
    sdk.image.add_tag(ids[0], "extra")
    assert sorted(stored(glint_server, ids[0])["tags"]) == sorted([tag, "extra"])

    sdk.image.delete_image(ids[1])
    assert api(glint_server, "GET", f"/v2/images/{ids[1]}").status_code == 404
    assert [image.id for image in sdk.image.images(tag=tag)] == [ids[2], ids[0]]
