"""The default rules of the metadata definitions API (``/v2/metadefs``), as Glance's.

Reading is for any project reader when the namespace is public, and for the owner project's
readers when it is private; writing is for admins (``metadef_admin``). Targets name the
namespace's owner ``project_id`` and its ``visibility``; lists and creates name the caller's
project.
"""

from __future__ import annotations

from oslo_policy import policy

from glint.policy.rules import ADMIN, _rule

METADEF_ADMIN = "rule:metadef_admin"
READ = f"{ADMIN} or (role:reader and (project_id:%(project_id)s or \"public\":%(visibility)s))"
NAMESPACES = "/v2/metadefs/namespaces"
NAMESPACE = f"{NAMESPACES}/{{namespace_name}}"
OBJECT = f"{NAMESPACE}/objects/{{object_name}}"
PROPERTY = f"{NAMESPACE}/properties/{{property_name}}"
TAG = f"{NAMESPACE}/tags/{{tag_name}}"
ASSOCIATIONS = f"{NAMESPACE}/resource_types"


def defaults() -> list[policy.RuleDefault]:
    """Every metadef rule."""
    return [
        policy.RuleDefault("metadef_admin", ADMIN,
                           description="Who may change metadata definitions."),
        _rule("get_metadef_namespace", READ, "Show a namespace", ("GET", NAMESPACE)),
        _rule("get_metadef_namespaces", READ, "List namespaces", ("GET", NAMESPACES)),
        _rule("add_metadef_namespace", METADEF_ADMIN, "Create a namespace",
              ("POST", NAMESPACES)),
        _rule("modify_metadef_namespace", METADEF_ADMIN, "Update a namespace",
              ("PUT", NAMESPACE)),
        _rule("delete_metadef_namespace", METADEF_ADMIN, "Delete a namespace",
              ("DELETE", NAMESPACE)),
        _rule("get_metadef_object", READ, "Show an object", ("GET", OBJECT)),
        _rule("get_metadef_objects", READ, "List a namespace's objects",
              ("GET", f"{NAMESPACE}/objects")),
        _rule("add_metadef_object", METADEF_ADMIN, "Create an object",
              ("POST", f"{NAMESPACE}/objects")),
        _rule("modify_metadef_object", METADEF_ADMIN, "Update an object", ("PUT", OBJECT)),
        _rule("delete_metadef_object", METADEF_ADMIN, "Delete an object", ("DELETE", OBJECT)),
        _rule("get_metadef_property", READ, "Show a property", ("GET", PROPERTY)),
        _rule("get_metadef_properties", READ, "List a namespace's properties",
              ("GET", f"{NAMESPACE}/properties")),
        _rule("add_metadef_property", METADEF_ADMIN, "Create a property",
              ("POST", f"{NAMESPACE}/properties")),
        _rule("modify_metadef_property", METADEF_ADMIN, "Update a property",
              ("PUT", PROPERTY)),
        _rule("remove_metadef_property", METADEF_ADMIN, "Delete a property",
              ("DELETE", PROPERTY)),
        _rule("get_metadef_tag", READ, "Show a tag", ("GET", TAG)),
        _rule("get_metadef_tags", READ, "List a namespace's tags", ("GET", f"{NAMESPACE}/tags")),
        _rule("add_metadef_tag", METADEF_ADMIN, "Create a tag", ("POST", TAG)),
        _rule("add_metadef_tags", METADEF_ADMIN, "Create tags (optionally replacing all)",
              ("POST", f"{NAMESPACE}/tags")),
        _rule("modify_metadef_tag", METADEF_ADMIN, "Rename a tag", ("PUT", TAG)),
        _rule("delete_metadef_tag", METADEF_ADMIN, "Delete a tag", ("DELETE", TAG)),
        _rule("delete_metadef_tags", METADEF_ADMIN, "Delete all of a namespace's tags",
              ("DELETE", f"{NAMESPACE}/tags")),
        _rule("list_metadef_resource_types", READ, "List resource types",
              ("GET", "/v2/metadefs/resource_types")),
        _rule("get_metadef_resource_type", READ, "List a namespace's resource type "
              "associations", ("GET", ASSOCIATIONS)),
        _rule("add_metadef_resource_type_association", METADEF_ADMIN,
              "Associate a resource type with a namespace", ("POST", ASSOCIATIONS)),
        _rule("remove_metadef_resource_type_association", METADEF_ADMIN,
              "Remove a resource type association",
              ("DELETE", f"{ASSOCIATIONS}/{{resource_type}}")),
    ]
