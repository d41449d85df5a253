"""The one place a script's context is built, for a run and for an abandoned task's cleanup.

What the context lends (:mod:`glint.scripts.contract`) is made here from glint's parts: the
database API (:class:`glint.tasks.script_api.ScriptDbApi`) acting as the task's creator and
fenced by the run's lease, the stores and the staging area, the safety gate, the notifier, the
settings a script may read (:class:`~glint.scripts.contract.ScriptSettings`, nothing wider),
and the caller's credentials from this process's hand-off (:mod:`glint.tasks.handoff`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from glint.context import RequestContext
from glint.db import engine, leases, models
from glint.images import service as images
from glint.images.locations import Locations
from glint.notifiers import base as notifiers
from glint.scripts import contract
from glint.settings import Settings
from glint.stores.base import Store
from glint.tasks import progress
from glint.tasks.handoff import Handoff
from glint.tasks.script_api import ScriptDbApi, ScriptStores


class ContextFactory:
    def __init__(self, db: engine.Database, images_service: images.ImageService, store: Store,
                 notifier: notifiers.Notifier, settings: Settings,
                 image_gate: contract.ImageGate, handoff: Handoff, locations: Locations,
                 image_cache: contract.ImageCache | None = None) -> None:
        self.db = db
        self.image_cache = image_cache
        self.locations = locations
        self.images = images_service
        self.store = store
        self.notifier = notifier
        self.settings = contract.ScriptSettings.from_settings(settings)
        self.image_gate = image_gate
        self.handoff = handoff
        self.stores = ScriptStores(store, images_service.staging)

    def build(self, task: models.Task, *, attempt: int, lease: leases.Lease | None = None,
              report: progress.Write = lambda text, data: None,
              should_cancel: Callable[[], bool] = lambda: True,
              ) -> tuple[contract.ScriptContext, ScriptDbApi]:
        """The context of a run of ``task`` (with its lease, heartbeat and cancel check), or,
        without them, of a cleanup after the task was given up: unfenced, already cancelled."""
        request_context = RequestContext.from_dict(task.context or {})
        api = ScriptDbApi(self.db, self.images, self.locations, request_context, task.id,
                          lease)
        ctx = contract.ScriptContext(
            task_id=task.id, task_type=task.type, task_input=dict(task.input or {}),
            request_context=request_context, db_api=api, store_api=self.store,
            notifier_api=self.notifier, settings=self.settings,
            report_progress=progress.Reporter(report), should_cancel=should_cancel,
            logger=logging.getLogger(f"glint.task.{task.type}"), image_gate=self.image_gate,
            stores=self.stores, attempt=attempt, credentials=self.handoff.get(task.id),
            image_cache=self.image_cache)
        return ctx, api
