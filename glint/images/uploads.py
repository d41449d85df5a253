"""Receiving image data: ``PUT /v2/images/{id}/file`` (upload) and ``.../stage`` (staging).

Both run in one worker thread per request, fed the request body as it arrives
(:mod:`glint.api.streaming`), in a visible order: claim the image (a status change, so a
second writer gets 409), copy the bytes through :func:`glint.datapath.copy` into a writer that
shows nothing until it commits, then record the result. An upload also passes the safety gate
on the way (:mod:`glint.gate`, the ``require_image_format_match`` setting). Any failure on the
way (the client
going away, ``image_size_cap``, a size that differs from ``x-openstack-image-size``, a store
error) aborts the writer and puts the image back to ``queued``: nothing is left behind. A full
store answers 413, a read-only one 503 (:func:`glint.errors.store_error`).
An image deleted meanwhile gets its bytes removed and the request ends with 410.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from glint import datapath, errors, gate, metrics
from glint.context import RequestContext
from glint.db import models
from glint.images import states, views
from glint.images.service import ImageData, ImageService
from glint.imports import methods
from glint.notifiers import base as notifiers
from glint.settings import Settings
from glint.stores.base import Store


class Uploads:
    def __init__(self, images: ImageService, notifier: notifiers.Notifier, settings: Settings,
                 image_gate: gate.ImageGate) -> None:
        self.images = images
        self.notifier = notifier
        self.settings = settings
        self.gate = image_gate

    # -- PUT /v2/images/{id}/file --------------------------------------------------------

    def upload(self, ctx: RequestContext, image_id: str, chunks: Iterable[bytes],
               expected_size: int | None, store: str | None = None) -> models.Image:
        """queued → saving → active with ``chunks`` in the store; back to queued on failure.

        ``store`` (``X-Image-Meta-Store``) picks a multi-store glint's backend (unknown: 400);
        without multi-store it is ignored, as Glance does.
        """
        backends = self.images.backends
        store = store or None if backends.multi else None
        if store is not None and store not in backends.backends:
            raise errors.BadRequest(f"Store {store[:64]} is not available; stores: "
                                    f"{', '.join(backends.ids)}")
        image = self._claim(ctx, image_id, "upload_image", states.SAVING)
        checked = self._checked(image, chunks)
        try:
            digest, location = self._write(backends.backend(store), image_id,
                                           checked or chunks, expected_size,
                                           self.settings.hashing_algorithm,
                                           backends.resolve(store))
        except BaseException as exc:
            self._release(ctx, image_id, states.SAVING, exc)
            raise
        verdict = checked.verdict if checked is not None else None
        data = ImageData(location=location, size=digest.size, checksum=digest.checksum,
                         os_hash_algo=digest.hash_algo, os_hash_value=digest.hash_value,
                         store=store, virtual_size=verdict.virtual_size if verdict else None)
        try:
            image = self.images.set_data(ctx, image_id, data, from_status=states.SAVING)
        except errors.NotFound:  # set_data removed the bytes
            raise _gone(image_id) from None
        self._notify("image.upload", image)
        return image

    # -- PUT /v2/images/{id}/stage -------------------------------------------------------

    def stage(self, ctx: RequestContext, image_id: str, chunks: Iterable[bytes],
              expected_size: int | None) -> models.Image:
        """queued → uploading with ``chunks`` in the staging area, for a glance-direct import."""
        if methods.GLANCE_DIRECT not in self.settings.enabled_import_methods:
            raise errors.NotFound("The glance-direct import method is not enabled, so images "
                                  "cannot be staged.")
        # Not inspected here, as in Glance: the import checks the data (once decompressed).
        self._claim(ctx, image_id, "stage_image", states.UPLOADING)
        staging = self.images.staging
        try:
            digest, location = self._write(staging, image_id, chunks, expected_size, "md5",
                                           "staging")
        except BaseException as exc:
            self._release(ctx, image_id, states.UPLOADING, exc)
            raise
        try:
            return self.images.set_status(ctx, image_id, states.UPLOADING,
                                          expected=states.UPLOADING, size=digest.size)
        except errors.NotFound:
            staging.delete(location)
            raise _gone(image_id) from None
        except errors.Conflict:
            staging.delete(location)
            raise

    # -- steps ---------------------------------------------------------------------------

    def _claim(self, ctx: RequestContext, image_id: str, action: str,
               target: str) -> models.Image:
        """Check the policy allows ``action`` and the image takes data; move it to ``target``."""
        image = self.images.check(ctx, image_id, action)
        if image.status != states.QUEUED:
            raise errors.Conflict(_not_queued(image))
        image = self.images.set_status(ctx, image_id, target, expected=states.QUEUED)
        self._notify("image.prepare", image)
        return image

    def _checked(self, image: models.Image, chunks: Iterable[bytes]) -> gate.Checked | None:
        """``require_image_format_match``: the data must be the image's ``disk_format``.

        Glance's rule, applied by the safety gate as the bytes stream past, in the same pass as
        the copy; its verdict ends the stream, before the commit, so refused data (415) is
        never stored. Other containers than ``bare`` wrap the disk: their bytes need not be
        the ``disk_format``, but must not be an unsafe disk image either.
        """
        if not self.settings.require_image_format_match or image.disk_format is None:
            return None
        return self.gate.stream(chunks, image.disk_format, image.container_format)

    def _write(self, store: Store, image_id: str, chunks: Iterable[bytes],
               expected_size: int | None, hash_algo: str,
               store_id: str) -> tuple[datapath.Digest, str]:
        try:
            with store.writer(image_id) as writer:
                digest = datapath.copy(chunks, writer, size_cap=self.settings.image_size_cap,
                                       hash_algo=hash_algo, expected_size=expected_size,
                                       meter=metrics.meter("upload", store_id))
                return digest, writer.commit()
        except OSError as exc:  # a store that does not say what it means (the filesystem's do)
            raise errors.store_error(exc) from exc

    def _release(self, ctx: RequestContext, image_id: str, claimed: str,
                 exc: BaseException) -> None:
        """Back to queued after a failed write (unless the image went away meanwhile)."""
        with contextlib.suppress(errors.NotFound, errors.Conflict):  # deleted meanwhile
            self.images.set_status(ctx, image_id, states.QUEUED, expected=claimed,
                                   size=None, virtual_size=None)
        message = exc.message if isinstance(exc, errors.GlintError) else type(exc).__name__
        self.notifier.notify(notifiers.Event(
            "image.upload", {"image_id": image_id, "message": f"Image upload failed: {message}"},
            notifiers.ERROR))

    def _notify(self, event_type: str, image: models.Image) -> None:
        self.notifier.notify(notifiers.Event(event_type, _payload(image)))


def _payload(image: models.Image) -> dict[str, Any]:
    """Glance's ``image.prepare``/``image.upload`` payload: the image plus its import stores."""
    return {**views.notification(image), "backend": None,
            "os_glance_importing_to_stores": [], "os_glance_failed_import": []}


def _not_queued(image: models.Image) -> str:
    if image.status == states.UPLOADING:
        return f"Image {image.id} already has staged data; import it or delete the image."
    if image.status == states.SAVING:
        return f"Image {image.id} is already receiving data."
    return (f"Image {image.id} is {image.status}: data can only be written to an image in "
            "status queued.")


def _gone(image_id: str) -> errors.Gone:
    return errors.Gone(f"Image {image_id} was deleted while its data was being written; "
                       "the data was removed.")
