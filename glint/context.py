"""The request context: who is asking, on behalf of which project.

It is built once per request by the identity middleware (trusted headers now, Keystone's
``auth_token`` later: both hand over the same facts) and passed down explicitly.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Callable

# Keystone's default role hierarchy (``keystone-manage bootstrap``): a token for a role carries
# the roles it implies too. Header mode gets the same, so a caller sending ``X-Roles: member``
# is also a reader, as it would be behind Keystone.
IMPLIED_ROLES = {"admin": ("member", "reader"), "member": ("reader",)}


def new_request_id() -> str:
    return f"req-{uuid.uuid4()}"


@dataclasses.dataclass(frozen=True)
class RequestContext:
    """Identity of the caller, as a Keystone token would describe it."""

    user_id: str | None
    project_id: str | None
    roles: tuple[str, ...] = ()
    request_id: str = dataclasses.field(default_factory=new_request_id)
    # Roles of a service token sent with the user's (``X-Service-Roles``), for policy.
    service_roles: tuple[str, ...] = ()
    # Whether the caller passes the ``context_is_admin`` policy rule, when already known (a
    # task's recorded context). None: ``admin_rule`` decides, or else the ``admin`` role alone.
    policy_admin: bool | None = None
    # The API's ``context_is_admin`` check (glint.policy), run when ``is_admin`` is first read:
    # a request that never asks (a data transfer, say) does not pay for a policy check.
    admin_rule: Callable[[RequestContext], bool] | None = dataclasses.field(
        default=None, repr=False, compare=False)
    # Keystone mode: the caller's token and service catalog, for work that calls other
    # services as the caller (a glance-download import). Never stored (see to_dict).
    auth_token: str | None = dataclasses.field(default=None, repr=False, compare=False)
    service_catalog: tuple[dict[str, object], ...] = dataclasses.field(
        default=(), repr=False, compare=False)

    @functools.cached_property
    def is_admin(self) -> bool:
        """Whether the caller is an admin: sees every project's images and tasks.

        Decided once per context, on first read.
        """
        if self.policy_admin is not None:
            return self.policy_admin
        if self.admin_rule is not None:
            return self.admin_rule(self)
        return "admin" in self.roles

    def to_policy_values(self) -> dict[str, object]:
        """The credentials oslo.policy checks rules against (oslo.context's names)."""
        roles = {role.lower() for role in self.roles}
        for role in list(roles):
            roles.update(IMPLIED_ROLES.get(role, ()))
        return {"user_id": self.user_id, "project_id": self.project_id,
                "roles": sorted(roles), "service_roles": [r.lower() for r in self.service_roles],
                "system_scope": None, "domain_id": None}

    @property
    def owner(self) -> str | None:
        """The owner recorded on what this context creates (the project)."""
        return self.project_id

    def to_dict(self) -> dict[str, object]:
        """What a task records of its creator: never the token or the catalog."""
        return {
            "user_id": self.user_id,
            "project_id": self.project_id,
            "roles": list(self.roles),
            "request_id": self.request_id,
            "is_admin": self.is_admin,
            "service_roles": list(self.service_roles),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> RequestContext:
        admin = data.get("is_admin")
        return cls(
            user_id=_opt_str(data.get("user_id")),
            project_id=_opt_str(data.get("project_id")),
            roles=_strings(data.get("roles")),
            request_id=str(data.get("request_id") or new_request_id()),
            service_roles=_strings(data.get("service_roles")),
            policy_admin=admin if isinstance(admin, bool) else None,
        )

    @classmethod
    def admin(cls, request_id: str | None = None) -> RequestContext:
        """A context for glint's own housekeeping (purge, start-up recovery)."""
        return cls(user_id=None, project_id=None, roles=("admin",),
                   request_id=request_id or new_request_id())


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()
