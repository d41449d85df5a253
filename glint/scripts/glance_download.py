"""The ``glance-download`` import method: an image from another Glance region, as the caller.

Glance's method: ``{"method": {"name": "glance-download", "glance_image_id": <uuid>,
"glance_region": <region>, "glance_service_interface": "public"}}``. The source is the image
service that the caller's Keystone service catalog lists for that region and interface, read
with the caller's token (so the other region's own rules decide what may be read); both come
from the request that started the import (``ctx.credentials``, handed over in memory by
:mod:`glint.tasks.handoff`), never from storage.

Before any data moves, the source image's record is read: it must be active; its
``disk_format`` and ``container_format``, and its properties whose names start with one of
``glance_download_properties`` (Glance's defaults: ``hw_``, ``trait:``, ``os_distro``,
``os_secure_boot``, ``os_type``), are set on the target image, replacing what it had (and put
back if the import fails). Then the data is streamed from the source's ``/file`` through the
same intake as every import (format inspection, hashing, the store), and must match the
source's checksum. Catalog endpoints are the operator's, so the import URL filter, which guards
user-supplied URLs, does not apply to them.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from glint import digits, errors
from glint.scripts import contract

NAME = "glance-download"
SERVICE_TYPE = "image"
RESERVED_PREFIX = "os_glance"
CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Source:
    """The source image, where to read it, and what the target had before it was changed."""

    url: str  # the source image's API URL: <endpoint>/v2/images/<id>
    token: str = dataclasses.field(repr=False)
    image: Mapping[str, Any]
    previous_fields: Mapping[str, Any]
    previous_properties: Mapping[str, str | None]


def endpoint(catalog: tuple[Mapping[str, Any], ...], region: str, interface: str) -> str:
    """The image service URL the catalog lists for ``region`` and ``interface``."""
    for service in catalog:
        if service.get("type") != SERVICE_TYPE:
            continue
        for entry in service.get("endpoints") or ():
            url = entry.get(f"{interface}URL") if isinstance(entry, Mapping) else None
            if entry.get("region") == region and isinstance(url, str) and url:
                return url.rstrip("/")
    raise errors.ScriptError(f"No image service endpoint in region {region[:64]!r} with "
                             f"interface {interface[:64]!r} in the caller's service catalog")


def prepare(ctx: contract.ScriptContext, image_id: str, method: Mapping[str, Any]) -> Source:
    """Read the source image's record and copy its formats and boot properties to the target."""
    credentials = ctx.credentials
    if credentials is None:
        raise errors.ScriptError(
            "The caller's credentials for glance-download are gone (glint restarted, or the "
            "task waited past their lifetime); import the image again")
    base = endpoint(credentials.service_catalog, method["glance_region"],
                    method.get("glance_service_interface", "public"))
    url = f"{base}/v2/images/{method['glance_image_id']}"
    try:
        with _client(ctx) as http:
            response = http.get(url, headers=_headers(credentials.token))
    except httpx.HTTPError as exc:
        raise errors.ScriptError(f"Could not reach the image service at {base}: "
                                 f"{type(exc).__name__}") from exc
    if response.status_code == 404:
        raise errors.ScriptError(f"Image {method['glance_image_id']} was not found in region "
                                 f"{method['glance_region']!r}")
    if response.status_code != 200:
        raise errors.ScriptError(f"The image service at {base} answered "
                                 f"{response.status_code} for image "
                                 f"{method['glance_image_id']}")
    source_image = response.json()
    if source_image.get("status") != "active":
        raise errors.ScriptError(f"Image {method['glance_image_id']} in region "
                                 f"{method['glance_region']!r} is {source_image.get('status')}, "
                                 "not active")
    target = ctx.db_api.get_image(image_id)
    fields = {key: source_image.get(key) for key in ("disk_format", "container_format")}
    copied = {key: str(value) for key, value in source_image.items()
              if key.startswith(tuple(ctx.settings.glance_download_properties))
              and not key.startswith(RESERVED_PREFIX) and value is not None}
    source = Source(url=url, token=credentials.token, image=source_image,
                    previous_fields={key: target.get(key) for key in fields},
                    previous_properties={key: target.get(key) for key in copied})
    ctx.db_api.set_image_attributes(image_id, fields, copied)
    return source


def restore(ctx: contract.ScriptContext, image_id: str, source: Source) -> None:
    """Put back the target's formats and properties as they were before :func:`prepare`."""
    ctx.db_api.set_image_attributes(image_id, source.previous_fields,
                                    source.previous_properties)


@contextlib.contextmanager
def body(ctx: contract.ScriptContext,
         source: Source) -> Iterator[tuple[Iterator[bytes], int | None]]:
    """The source image's data as chunks, with its length when announced."""
    with _client(ctx) as http, http.stream("GET", f"{source.url}/file",
                                           headers=_headers(source.token)) as response:
        if response.status_code != 200:
            raise errors.ScriptError(f"The source image's data could not be read: the image "
                                     f"service answered {response.status_code}")
        yield response.iter_bytes(CHUNK), digits.parse(response.headers.get("content-length", ""))


def check_data(source: Source, checksum: str) -> None:
    """The data read must be the source image's (its md5 ``checksum``)."""
    expected = source.image.get("checksum")
    if expected and expected != checksum:
        raise errors.ScriptError(f"The data read does not match the source image's checksum "
                                 f"({checksum} instead of {expected})")


def _client(ctx: contract.ScriptContext) -> httpx.Client:
    return httpx.Client(timeout=ctx.settings.import_timeout, follow_redirects=False,
                        trust_env=False)


def _headers(token: str) -> dict[str, str]:
    return {"X-Auth-Token": token, "Accept": "application/json"}
