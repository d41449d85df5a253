"""Who may do what: oslo.policy rules checked against the caller's request context.

The defaults live in code (:mod:`glint.policy.rules`); the ``policy_file`` setting names a YAML
(or JSON) file whose rules override them, re-read when it changes, as in every OpenStack
service. :class:`Policy` is built once by the composition root and handed to the services,
which call :meth:`Policy.enforce` with a target describing the resource (see the ``*_target``
helpers). A refusal is :class:`glint.errors.Forbidden` naming the action, in Glance's words.

Visibility stays the database's job: a caller never learns that another project's private
image or task exists (404), whatever the policy says.

``list_rules`` and ``get_enforcer`` are the ``oslo.policy.policies`` and
``oslo.policy.enforcer`` entry points, for ``oslopolicy-sample-generator --namespace glint``
and the other oslopolicy tools.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

from oslo_config import cfg
from oslo_policy import _checks, policy

from glint import errors
from glint.context import RequestContext
from glint.db import models
from glint.policy import rules
from glint.settings import Settings

__all__ = ["Policy", "get_enforcer", "image_target", "list_rules", "project_target",
           "refusal", "task_target"]

Target = Mapping[str, object]
MAX_DECISIONS = 4096  # remembered at most; then forgotten all at once


def refusal(action: str) -> str:
    """Glance's message for a refused action."""
    return f"You are not authorized to complete {action} action."


class Policy:
    """The enforcer and the checks the services make with it.

    Decisions are remembered: a rule's outcome depends only on the target and the caller's
    credentials, so the same question gets the answer from memory, not from oslo.policy again
    (a fifth of a task list page's CPU went to re-evaluating the same few rules). The memory
    goes when the rules are loaded anew (the policy file changed), and is not kept at all when
    a rule could answer differently to the same question (an ``http:`` check, a check type
    registered by a plugin).
    """

    def __init__(self, enforcer: policy.Enforcer) -> None:
        self.enforcer = enforcer
        self._decisions: dict[Hashable, bool] = {}
        self._rules: object = None  # the enforcer's rules the decisions were made under
        self._remember = False

    @classmethod
    def from_settings(cls, settings: Settings, task_types: Iterable[str] = ()) -> Policy:
        return cls(build_enforcer(settings, task_types))

    def check(self, ctx: RequestContext, action: str, target: Target) -> bool:
        """Whether ``ctx`` may do ``action`` on ``target``."""
        self.enforcer.load_rules()  # re-reads the policy file if it changed
        rules = self.enforcer.rules
        if action not in rules:
            raise LookupError(f"no policy rule {action!r}")  # a typo must not fall to "default"
        if rules is not self._rules:  # loaded anew (reading the file makes a new Rules)
            self._decisions, self._rules = {}, rules
            self._remember = all(_deterministic(check) for check in rules.values())
        creds = ctx.to_policy_values()
        key = _question(action, target, creds) if self._remember else None
        if key is not None and (known := self._decisions.get(key)) is not None:
            return known
        allowed = bool(self.enforcer.enforce(action, dict(target), creds))
        if key is not None:
            if len(self._decisions) >= MAX_DECISIONS:
                self._decisions = {}
            self._decisions[key] = allowed
        return allowed

    def enforce(self, ctx: RequestContext, action: str, target: Target) -> None:
        """Forbidden unless ``ctx`` may do ``action`` on ``target``."""
        if not self.check(ctx, action, target):
            raise errors.Forbidden(refusal(action))

    def enforce_image(self, ctx: RequestContext, action: str, target: Target) -> None:
        """As :meth:`enforce`, but NotFound when ``ctx`` may not even see the image (Glance)."""
        if self.check(ctx, action, target):
            return
        if action == "get_image" or not self.check(ctx, "get_image", target):
            raise errors.NotFound(f"No image found with ID {target.get('image_id')}")
        raise errors.Forbidden(refusal(action))

    def is_admin(self, ctx: RequestContext) -> bool:
        """Whether ``ctx`` passes ``context_is_admin``."""
        return self.check(ctx, "context_is_admin", {})

    def task_rule(self, task_type: str) -> str:
        """``add_task:<type>`` when there is such a rule (in code or file), else ``add_task``."""
        self.enforcer.load_rules()
        name = rules.task_rule_name(task_type)
        return name if name in self.enforcer.rules else rules.ADD_TASK


# Checks whose outcome is a function of the rules, the target and the credentials alone.
_PURE_CHECKS = (_checks.TrueCheck, _checks.FalseCheck, _checks.NotCheck, _checks.AndCheck,
                _checks.OrCheck, _checks.RuleCheck, _checks.RoleCheck, _checks.GenericCheck)


def _deterministic(check: object) -> bool:
    if type(check) not in _PURE_CHECKS:
        return False
    inner = [*getattr(check, "rules", ()), getattr(check, "rule", None)]
    return all(_deterministic(c) for c in inner if isinstance(c, _checks.BaseCheck))


def _question(action: str, target: Target, creds: Mapping[str, object]) -> Hashable | None:
    """``action``, ``target`` and ``creds`` as a dictionary key; None if a value is not one."""
    try:
        key = (action, _frozen(target), _frozen(creds))
        hash(key)
    except TypeError:
        return None
    return key


def _frozen(values: Mapping[str, object]) -> tuple[tuple[str, object], ...]:
    return tuple(sorted((name, tuple(value) if isinstance(value, list) else value)
                        for name, value in values.items()))


# -- targets ---------------------------------------------------------------------------------

def project_target(ctx: RequestContext) -> dict[str, object]:
    """The caller's own project (lists, creates)."""
    return _present({"project_id": ctx.project_id})


def image_target(image: models.Image, member_id: str | None = None) -> dict[str, object]:
    """An image as Glance's policy sees it; ``member_id`` is the caller's project when the
    image is shared with it."""
    return _present({"image_id": image.id, "project_id": image.owner, "owner": image.owner,
                     "visibility": image.visibility, "member_id": member_id,
                     "status": image.status})


def task_target(task: models.Task) -> dict[str, object]:
    return _present({"task_id": task.id, "project_id": task.owner or None, "type": task.type})


def _present(values: Mapping[str, object]) -> dict[str, object]:
    # A missing key fails its check; None would compare equal to a context's None project.
    return {key: value for key, value in values.items() if value is not None}


# -- building --------------------------------------------------------------------------------

def build_enforcer(settings: Settings, task_types: Iterable[str] = ()) -> policy.Enforcer:
    """An enforcer with glint's defaults and the ``policy_file`` setting's overrides.

    ConfigurationError when the file is missing or does not parse.
    """
    conf = cfg.ConfigOpts()
    conf([], project="glint", default_config_files=[], default_config_dirs=[])
    path = settings.policy_file
    if path is not None and not path.is_file():
        raise errors.ConfigurationError(f"policy_file {path} is not a file")
    defaults = rules.defaults(task_types)
    enforcer = policy.Enforcer(conf, policy_file=str(path.resolve()) if path else None,
                               use_conf=path is not None)
    conf.set_override("policy_dirs", [], group="oslo_policy")
    enforcer.register_defaults(defaults)
    if path is None:  # the defaults alone: no search of /etc/glint and the like for a file
        enforcer.set_rules(policy.Rules({d.name: d.check for d in defaults}), use_conf=False)
        return enforcer
    try:
        enforcer.load_rules()
    except Exception as exc:  # the file's YAML or a check string in it
        raise errors.ConfigurationError(f"policy_file {path}: {exc}") from exc
    return enforcer


def list_rules() -> list[policy.RuleDefault]:
    """The ``oslo.policy.policies`` entry point: every default, task types installed here."""
    return rules.defaults(_installed_task_types())


def get_enforcer() -> policy.Enforcer:
    """The ``oslo.policy.enforcer`` entry point: glint's enforcer with the current settings
    (``GLINT_*`` and ``$GLINT_CONFIG``), for ``oslopolicy-list-redundant`` and friends."""
    from glint import settings as settings_mod

    return build_enforcer(settings_mod.load(), _installed_task_types())


def _installed_task_types() -> list[str]:
    from glint.scripts.registry import Registry

    try:
        return list(Registry.load().types)
    except Exception:  # the tools still list the rest
        return []
