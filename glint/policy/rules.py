"""glint's policy in code: the default rule of every action, as oslo.policy defaults.

The personas and check strings are Glance's secure-RBAC defaults (``glance/policies``): an
admin (``role:admin``), a project member (``role:member`` on the project that owns the
resource), a project reader (``role:reader`` there) and a service (``role:service``). Targets
name the resource's project ``project_id`` (an image's ``owner``, a task's), the caller's
project ``member_id`` when the image is shared with it, and the image's ``visibility``.

Tasks differ from Glance, where only admins may use them: tasks are glint's main interface,
so project members create them and readers read them. Each task type also has its own rule,
``add_task:<type>``, defaulting to ``rule:add_task``, so a policy file can set one type apart.
"""

from __future__ import annotations

from collections.abc import Iterable

from oslo_policy import policy

ADMIN = "rule:context_is_admin"
SERVICE = "rule:service_api"
PROJECT_MEMBER = "role:member and project_id:%(project_id)s"
PROJECT_READER = "role:reader and project_id:%(project_id)s"
IMAGE_MEMBER = "project_id:%(member_id)s"
SHARED_WITH_ALL = ('"community":%(visibility)s or "public":%(visibility)s '
                   'or "shared":%(visibility)s')

ADMIN_OR_PROJECT_MEMBER = f"{ADMIN} or ({PROJECT_MEMBER})"
ADMIN_OR_PROJECT_READER = f"{ADMIN} or ({PROJECT_READER})"
ADMIN_OR_PROJECT_MEMBER_CREATE_IMAGE = f"{ADMIN} or ({PROJECT_MEMBER} and project_id:%(owner)s)"
ADMIN_OR_PROJECT_READER_GET_IMAGE = (
    f"{ADMIN} or (role:reader and (project_id:%(project_id)s or {IMAGE_MEMBER} "
    f"or {SHARED_WITH_ALL}))")
ADMIN_OR_PROJECT_MEMBER_DOWNLOAD_IMAGE = (
    f"{ADMIN} or (role:member and (project_id:%(project_id)s or {IMAGE_MEMBER} "
    f"or {SHARED_WITH_ALL}))")
ADMIN_OR_SHARED_MEMBER = f"{ADMIN} or (role:member and {IMAGE_MEMBER})"
ADMIN_OR_PROJECT_READER_OR_SHARED_MEMBER = (
    f"{ADMIN} or (role:reader and (project_id:%(project_id)s or {IMAGE_MEMBER}))")
ADMIN_OR_SERVICE = f"{ADMIN} or {SERVICE}"

IMAGE = "/v2/images/{image_id}"
MEMBER = "/v2/images/{image_id}/members/{member_id}"
TASK = "/v2/tasks/{task_id}"
ADD_TASK = "add_task"


def _rule(name: str, check_str: str, description: str,
          *operations: tuple[str, str]) -> policy.DocumentedRuleDefault:
    return policy.DocumentedRuleDefault(
        name=name, check_str=check_str, description=description, scope_types=["project"],
        operations=[{"method": method, "path": path} for method, path in operations])


BASE = [
    policy.RuleDefault("context_is_admin", "role:admin",
                       description="Who is an admin: sees and may change every project's "
                                   "images and tasks."),
    policy.RuleDefault("service_api", "role:service",
                       description="Who is an OpenStack service acting on glint."),
    policy.RuleDefault("default", "", description="The rule of actions that have none."),
]

IMAGES = [
    _rule("add_image", ADMIN_OR_PROJECT_MEMBER_CREATE_IMAGE,
          "Create an image (owned by the caller's project unless an admin says otherwise)",
          ("POST", "/v2/images")),
    _rule("get_image", ADMIN_OR_PROJECT_READER_GET_IMAGE,
          "Show an image: the owner project's readers, or anyone for a public, community or "
          "shared image it can see", ("GET", IMAGE), ("GET", f"{IMAGE}/tasks")),
    _rule("get_images", ADMIN_OR_PROJECT_READER, "List the images the caller can see",
          ("GET", "/v2/images")),
    _rule("modify_image", ADMIN_OR_PROJECT_MEMBER, "Update an image and its tags",
          ("PATCH", IMAGE), ("PUT", f"{IMAGE}/tags/{{tag}}"),
          ("DELETE", f"{IMAGE}/tags/{{tag}}")),
    _rule("publicize_image", ADMIN, "Make an image public",
          ("POST", "/v2/images"), ("PATCH", IMAGE)),
    _rule("communitize_image", ADMIN_OR_PROJECT_MEMBER, "Make an image community",
          ("POST", "/v2/images"), ("PATCH", IMAGE)),
    _rule("delete_image", ADMIN_OR_PROJECT_MEMBER, "Delete an image", ("DELETE", IMAGE)),
    _rule("upload_image", ADMIN_OR_PROJECT_MEMBER, "Upload an image's data",
          ("PUT", f"{IMAGE}/file")),
    _rule("download_image", ADMIN_OR_PROJECT_MEMBER_DOWNLOAD_IMAGE, "Download an image's data",
          ("GET", f"{IMAGE}/file")),
    # Glance checks modify_image for these two; each has its own name here.
    _rule("stage_image", "rule:modify_image", "Stage an image's data for import",
          ("PUT", f"{IMAGE}/stage")),
    _rule("import_image", "rule:modify_image", "Import data into an image",
          ("POST", f"{IMAGE}/import")),
    _rule("copy_image", ADMIN, "Copy an image's data to other stores (copy-image)",
          ("POST", f"{IMAGE}/import")),
    _rule("delete_image_location", ADMIN, "Delete an image's data from one store (multi-store)",
          ("DELETE", "/v2/stores/{store_id}/{image_id}")),
    _rule("deactivate", ADMIN_OR_PROJECT_MEMBER, "Deactivate an image",
          ("POST", f"{IMAGE}/actions/deactivate")),
    _rule("reactivate", ADMIN_OR_PROJECT_MEMBER, "Reactivate an image",
          ("POST", f"{IMAGE}/actions/reactivate")),
    _rule("stores_info_detail", ADMIN_OR_SERVICE, "Show the stores with their details",
          ("GET", "/v2/info/stores/detail")),
]

MEMBERS = [
    _rule("add_member", ADMIN_OR_PROJECT_MEMBER, "Share an image with a project",
          ("POST", "/v2/images/{image_id}/members")),
    _rule("delete_member", ADMIN_OR_PROJECT_MEMBER, "Stop sharing an image with a project",
          ("DELETE", MEMBER)),
    _rule("get_member", ADMIN_OR_PROJECT_READER_OR_SHARED_MEMBER, "Show an image member",
          ("GET", MEMBER)),
    _rule("get_members", ADMIN_OR_PROJECT_READER_OR_SHARED_MEMBER, "List an image's members",
          ("GET", "/v2/images/{image_id}/members")),
    _rule("modify_member", ADMIN_OR_SHARED_MEMBER,
          "Accept or reject an image shared with the caller's project", ("PUT", MEMBER)),
]

TASKS = [
    _rule(ADD_TASK, ADMIN_OR_PROJECT_MEMBER,
          "Create a task (the default of every add_task:<type> rule)", ("POST", "/v2/tasks")),
    _rule("get_task", ADMIN_OR_PROJECT_READER, "Show a task", ("GET", TASK)),
    _rule("get_tasks", ADMIN_OR_PROJECT_READER, "List the tasks of the caller's project",
          ("GET", "/v2/tasks")),
    _rule("cancel_task", ADMIN_OR_PROJECT_MEMBER, "Cancel a task",
          ("POST", f"{TASK}/actions/cancel")),
]


CACHE = [
    _rule("cache_list", ADMIN, "List this node's cached and queued images", ("GET", "/v2/cache")),
    _rule("cache_image", ADMIN, "Queue an image for prefetch into this node's cache",
          ("PUT", "/v2/cache/{image_id}")),
    _rule("cache_delete", ADMIN, "Remove images from this node's cache or its queue",
          ("DELETE", "/v2/cache/{image_id}"), ("DELETE", "/v2/cache")),
]


def task_rule_name(task_type: str) -> str:
    return f"{ADD_TASK}:{task_type}"


def task_rules(task_types: Iterable[str]) -> list[policy.DocumentedRuleDefault]:
    """One ``add_task:<type>`` rule per task type, each defaulting to ``add_task``."""
    return [_rule(task_rule_name(t), f"rule:{ADD_TASK}", f"Create a task of type {t}",
                  ("POST", "/v2/tasks")) for t in sorted(task_types)]


def defaults(task_types: Iterable[str] = ()) -> list[policy.RuleDefault]:
    """Every default rule, with one ``add_task:<type>`` per type in ``task_types``."""
    from glint.policy import metadef_rules  # it builds on this module

    return [*BASE, *IMAGES, *MEMBERS, *TASKS, *CACHE, *task_rules(task_types),
            *metadef_rules.defaults()]
