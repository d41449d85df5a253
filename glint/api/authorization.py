"""Settle whether the caller is an admin once per request, by the ``context_is_admin`` rule.

Runs right after the identity middleware. Everything below reads ``ctx.is_admin`` (the
database's visibility filters: an admin sees every project's images and tasks), so an
operator who changes ``context_is_admin`` in the policy file changes it everywhere.
"""

from __future__ import annotations

import dataclasses

from starlette.types import ASGIApp, Receive, Scope, Send

from glint.context import RequestContext
from glint.policy import Policy


class AdminMiddleware:
    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = scope.get("state", {}).get("context") if scope["type"] == "http" else None
        if isinstance(ctx, RequestContext):
            scope["state"]["context"] = dataclasses.replace(ctx, policy_admin=self.policy.is_admin(ctx))
        await self.app(scope, receive, send)
