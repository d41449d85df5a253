"""The import methods and the checks of an import request, with no service behind them.

``POST /v2/images/{id}/import`` names a method (Glance's: ``glance-direct``, ``web-download``,
``copy-image``, ``glance-download``); :func:`parse` checks the request body as Glance does and
:data:`NEEDED_STATUS` says what status each method needs the image in. The images slice reads
these names too (an upload to stage data needs ``glance-direct`` enabled); the service that
takes the lock and creates the task is :mod:`glint.imports.service`.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from glint import errors, urlfilter
from glint.images import states
from glint.settings import Settings
from glint.stores.multi import MultiStore

if TYPE_CHECKING:  # what a script's validate gets
    from glint.scripts.contract import ScriptSettings

SCRIPT = "api_image_import"
LOCK = "os_glance_import_task"
GLANCE_DIRECT = "glance-direct"
WEB_DOWNLOAD = "web-download"
COPY_IMAGE = "copy-image"  # an active image's data to more stores (multi-store only)
GLANCE_DOWNLOAD = "glance-download"  # from another Glance region, as the caller
# The methods glint runs, and the status each needs the image in.
NEEDED_STATUS = {GLANCE_DIRECT: states.UPLOADING, WEB_DOWNLOAD: states.QUEUED,
                 COPY_IMAGE: states.ACTIVE, GLANCE_DOWNLOAD: states.QUEUED}


@dataclasses.dataclass(frozen=True)
class ImportRequest:
    """A checked import request; ``body`` is kept as sent (the task's ``import_req``)."""

    method: str
    stores: tuple[str, ...]
    body: Mapping[str, Any]
    all_stores: bool = False


def parse(body: Mapping[str, Any], store_header: str | None, settings: Settings,
          backends: MultiStore) -> ImportRequest:
    """Check an import body as Glance does (400 naming the problem; 409 for a store that is
    not configured, with multi-store)."""
    check_method(body, settings)
    must_succeed = body.get("all_stores_must_succeed", True)
    if not isinstance(must_succeed, bool):
        raise errors.BadRequest("'all_stores_must_succeed' must be a boolean")
    method = body["method"]["name"]
    if not backends.multi:
        if must_succeed is not True:
            raise errors.BadRequest("all_stores_must_succeed can only be false with several "
                                    "stores, and this cloud has one")
        return ImportRequest(method=method, stores=_stores(body, store_header, backends.default),
                             body=dict(body))
    names = _named_stores(body, store_header)
    all_stores = bool(body.get("all_stores"))
    stores = backends.ids if all_stores else tuple(dict.fromkeys(names or [backends.default]))
    unknown = [n for n in stores if n not in backends.backends]
    if unknown:
        raise errors.Conflict(f"Unknown store(s) {', '.join(n[:64] for n in unknown)}; "
                              f"stores: {', '.join(backends.ids)}")
    return ImportRequest(method=method, stores=stores, body=dict(body), all_stores=all_stores)


def check_method(body: Mapping[str, Any], settings: Settings | ScriptSettings) -> None:
    """The ``method`` object: an enabled method glint runs; web-download's URI passes the filter."""
    method = body.get("method")
    if not isinstance(method, Mapping) or not isinstance(method.get("name"), str):
        raise errors.BadRequest("Import request requires a 'method' object with a 'name'")
    name = method["name"]
    if name not in settings.enabled_import_methods or name not in NEEDED_STATUS:
        enabled = [m for m in settings.enabled_import_methods if m in NEEDED_STATUS]
        raise errors.BadRequest(f"Import method {name[:64]!r} is not enabled; enabled methods: "
                                f"{', '.join(enabled) or 'none'}")
    if name == WEB_DOWNLOAD:
        uri = method.get("uri")
        if not isinstance(uri, str) or not uri:
            raise errors.BadRequest("The web-download method requires a 'uri'")
        try:
            urlfilter.UrlFilter.from_settings(settings).check(uri)
        except errors.BadRequest as exc:
            raise errors.BadRequest(f"URI for web-download does not pass filtering: "
                                    f"{exc.message}") from None
    if name == GLANCE_DOWNLOAD:
        _check_glance_download(method)


def _check_glance_download(method: Mapping[str, Any]) -> None:
    """Glance's checks (400): a UUID image id, a region, an interface name."""
    image_id = method.get("glance_image_id")
    try:
        uuid.UUID(str(image_id))
    except ValueError:
        raise errors.BadRequest(f"Requested image id does not look like a UUID: "
                                f"{str(image_id)[:64]!r}") from None
    region = method.get("glance_region")
    if not isinstance(region, str) or not region:
        raise errors.BadRequest("The glance-download method requires a 'glance_region'")
    if not isinstance(method.get("glance_service_interface", "public"), str):
        raise errors.BadRequest("'glance_service_interface' must be a string")


def _stores(body: Mapping[str, Any], header: str | None, store_name: str) -> tuple[str, ...]:
    names = _named_stores(body, header)
    unknown = sorted({n for n in names if n != store_name})
    if unknown:
        raise errors.BadRequest(f"Unknown store(s) {', '.join(n[:64] for n in unknown)}; "
                                f"this cloud has one store, {store_name!r}")
    return (store_name,)


def _named_stores(body: Mapping[str, Any], header: str | None) -> list[str]:
    """The stores the body or ``X-Image-Meta-Store`` name, checked for shape (400)."""
    stores = body.get("stores")
    all_stores = body.get("all_stores")
    if stores is not None and header:
        raise errors.BadRequest("Name the stores in the body or in X-Image-Meta-Store, not both")
    if all_stores is not None and not isinstance(all_stores, bool):
        raise errors.BadRequest("'all_stores' must be a boolean")
    if all_stores and (stores is not None or header):
        raise errors.BadRequest("'all_stores' cannot be combined with named stores")
    if stores is not None and (not isinstance(stores, list)
                               or not all(isinstance(s, str) for s in stores)):
        raise errors.BadRequest("'stores' must be a list of store names")
    return [*(stores or ()), *([header] if header else [])]


