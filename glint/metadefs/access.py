"""Who may see and change a namespace: the database's visibility, then the policy.

The one place the metadef services ask, so a deployment's policy file decides (Glance's
rules: :mod:`glint.policy.metadef_rules`). A namespace the caller may not see is NotFound,
whatever it asked to do; one it sees but may not change is Forbidden.
"""

from __future__ import annotations

from sqlalchemy import orm

from glint import errors
from glint import policy as policies
from glint.context import RequestContext
from glint.db import metadefs as rows
from glint.db import models


def target(namespace: models.MetadefNamespace) -> dict[str, object]:
    return {"project_id": namespace.owner, "visibility": namespace.visibility}


def not_found(name: str) -> errors.NotFound:
    return errors.NotFound(f"Metadata definition namespace={name} was not found.")


class Access:
    def __init__(self, policy: policies.Policy) -> None:
        self.policy = policy

    def namespace(self, session: orm.Session, ctx: RequestContext, name: str,
                  action: str | None = None, for_update: bool = False
                  ) -> models.MetadefNamespace:
        """The namespace ``name``; NotFound unless ``ctx`` may see it, Forbidden unless it may
        do ``action`` (a policy rule) to it."""
        found = rows.namespace(session, ctx, name, for_update=for_update)
        if found is None or not self.may_see(ctx, found):
            raise not_found(name)
        if action is not None:
            self.policy.enforce(ctx, action, target(found))
        return found

    def may_see(self, ctx: RequestContext, namespace: models.MetadefNamespace) -> bool:
        return self.policy.check(ctx, "get_metadef_namespace", target(namespace))

    def enforce(self, ctx: RequestContext, action: str) -> None:
        """Forbidden unless ``ctx`` may do ``action`` in its own project (lists, creates)."""
        self.policy.enforce(ctx, action, {"project_id": ctx.project_id or ""})

    def unprotected(self, namespace: models.MetadefNamespace, what: str) -> None:
        """Forbidden when the namespace is protected: nothing in it may be deleted."""
        if namespace.protected:
            raise errors.Forbidden(f"{what} is protected and cannot be deleted: namespace "
                                   f"{namespace.namespace} is protected.")
