"""The request context: who is asking, on behalf of which project.

It is built once per request by the identity middleware (trusted headers now, Keystone's
``auth_token`` later: both hand over the same facts) and passed down explicitly.
"""

from __future__ import annotations

import dataclasses
import uuid


def new_request_id() -> str:
    return f"req-{uuid.uuid4()}"


@dataclasses.dataclass(frozen=True)
class RequestContext:
    """Identity of the caller, as a Keystone token would describe it."""

    user_id: str | None
    project_id: str | None
    roles: tuple[str, ...] = ()
    request_id: str = dataclasses.field(default_factory=new_request_id)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def owner(self) -> str | None:
        """The owner recorded on what this context creates (the project)."""
        return self.project_id

    def to_dict(self) -> dict[str, object]:
        return {
            "user_id": self.user_id,
            "project_id": self.project_id,
            "roles": list(self.roles),
            "request_id": self.request_id,
            "is_admin": self.is_admin,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> RequestContext:
        roles = data.get("roles") or ()
        return cls(
            user_id=_opt_str(data.get("user_id")),
            project_id=_opt_str(data.get("project_id")),
            roles=tuple(str(r) for r in roles) if isinstance(roles, list | tuple) else (),
            request_id=str(data.get("request_id") or new_request_id()),
        )

    @classmethod
    def admin(cls, request_id: str | None = None) -> RequestContext:
        """A context for glint's own housekeeping (purge, start-up recovery)."""
        return cls(user_id=None, project_id=None, roles=("admin",),
                   request_id=request_id or new_request_id())


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)
