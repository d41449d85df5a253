"""Tempest tests that tempest itself skips, run against glint un-skipped.

``test_image_tasks_create`` carries ``@skip_because(bug='2030527')`` for an old Glance bug; the
task import it exercises is glint's main interface, so ``make conformance`` runs it here with
the decorator peeled off (``functools.wraps`` keeps the test under ``__wrapped__``).
"""

from tempest.api.image.v2.admin import test_image_task


class ImageTaskCreateUnskipped(test_image_task.ImageTaskCreate):
    test_image_tasks_create = test_image_task.ImageTaskCreate.test_image_tasks_create.__wrapped__

