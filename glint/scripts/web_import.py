"""The ``import`` task script: create an image from the bytes at an http(s) URL.

Input, as Glance's legacy ``import`` task takes it::

    {"import_from": "https://example.org/cirros.qcow2",
     "import_from_format": "qcow2",
     "image_properties": {"name": "cirros", "container_format": "bare"}}

All three keys are required (400 when the task is created). The URL passes the import URL filter
(:mod:`glint.urlfilter`) when the task is created and again on every redirect hop, which glint
follows itself, at most ``import_max_redirects`` of them.

Formats: glint stores the bytes as they come and does not convert them, so the image's
``disk_format`` is ``import_from_format``. ``image_properties`` may repeat it or leave it out;
naming another disk format is refused (400) rather than labelling one format as another
(Glance would store them mislabelled unless its conversion is configured).
``container_format`` defaults to ``bare``.

The image goes ``queued → importing → active``; the task's result is ``{"image_id": ...}``.
If anything fails, the image is deleted and no bytes stay in the store (not even a temporary
file), and the task's message says what went wrong.

``import_timeout`` bounds connecting and each wait for data, not the whole download: a large
image on a live connection takes as long as it takes.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import httpcore
import httpx

from glint import datapath, errors, urlfilter
from glint.images import states as image_states
from glint.scripts import contract, db_api
from glint.settings import Settings

DESCRIPTION = "Create an image from the data at an http(s) URL (Glance's legacy import task)."

INPUT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["import_from", "import_from_format", "image_properties"],
    "properties": {
        "import_from": {"type": "string", "minLength": 1, "maxLength": 8192,
                        "description": "http(s) URL of the image data"},
        "import_from_format": {"type": "string", "minLength": 1,
                               "description": "disk format of the data at the URL"},
        "image_properties": {"type": "object",
                             "description": "attributes and properties of the new image"},
    },
}

USER_AGENT = "glint-import"
READ_SIZE = 1024 * 1024  # bytes asked of the socket per read


def validate(task_input: Mapping[str, Any], settings: Settings) -> None:
    """Refuse at create time what could never succeed: a filtered URL, a bad format."""
    urlfilter.UrlFilter.from_settings(settings).check(task_input["import_from"])
    source_format = task_input["import_from_format"]
    if source_format not in settings.disk_formats:
        raise errors.BadRequest(f"Invalid import_from_format {source_format!r}: must be one of "
                                f"{', '.join(settings.disk_formats)}")
    disk_format = task_input["image_properties"].get("disk_format")
    if disk_format is not None and disk_format != source_format:
        raise errors.BadRequest(
            f"image_properties.disk_format {disk_format!r} differs from import_from_format "
            f"{source_format!r}: glint stores imported data as it is and does not convert it")


def main(ctx: contract.ScriptContext) -> contract.JsonObject:
    """Create the image, copy the URL's bytes into the store, activate it; clean up on failure."""
    url = ctx.task_input["import_from"]
    try:
        image = ctx.db_api.create_image(_image_values(ctx.task_input))
    except errors.GlintError as exc:
        raise errors.ScriptError(f"Could not create the image: {exc.message}") from exc
    image_id = image["id"]
    try:
        ctx.db_api.set_image_status(image_id, image_states.IMPORTING,
                                    expected=image_states.QUEUED)
        _import(ctx, image_id, url)
    except BaseException as exc:
        _discard(ctx, image_id)
        if not isinstance(exc, Exception):
            raise
        raise _failure(ctx, url, exc) from exc
    return {"image_id": image_id}


def _discard(ctx: contract.ScriptContext, image_id: str) -> None:
    try:
        ctx.db_api.discard_image(image_id)
    except Exception:  # keep the import's own error as the task's message
        ctx.logger.exception("could not discard image %s after a failed import", image_id)


def _image_values(task_input: Mapping[str, Any]) -> dict[str, Any]:
    values = dict(task_input["image_properties"])
    values["disk_format"] = task_input["import_from_format"]
    values["container_format"] = values.get("container_format") or "bare"
    return values


def _import(ctx: contract.ScriptContext, image_id: str, url: str) -> None:
    """Stream ``url`` into the store and record the data on the image (which activates it)."""
    settings = ctx.settings
    with ctx.store_api.writer(image_id) as writer, _client(settings) as client, \
            _open(client, url, urlfilter.UrlFilter.from_settings(settings),
                  settings.import_max_redirects) as response:
        length = _content_length(response)
        if length is not None and length > settings.image_size_cap:
            raise errors.TooLarge(f"Image data of {length} bytes exceeds the size cap of "
                                  f"{settings.image_size_cap} bytes")
        digest = datapath.copy(
            response.iter_raw(), writer, size_cap=settings.image_size_cap,
            hash_algo=settings.hashing_algorithm, expected_size=length,
            progress=lambda done: ctx.report_progress(done, length),
            should_cancel=ctx.should_cancel)
        location = writer.commit()
    data = db_api.ImageData(location=location, size=digest.size, checksum=digest.checksum,
                            os_hash_algo=digest.hash_algo, os_hash_value=digest.hash_value)
    try:
        ctx.db_api.set_image_data(image_id, data, from_status=image_states.IMPORTING)
    except BaseException:
        ctx.store_api.delete(location)  # set_image_data removes it too, on the errors it expects
        raise


def _client(settings: Settings) -> httpx.Client:
    # trust_env=False: no proxy or .netrc from the environment may route around the URL filter.
    # Accept-Encoding identity: the image is the bytes as served, and Content-Length counts them.
    return httpx.Client(timeout=settings.import_timeout, follow_redirects=False, trust_env=False,
                        transport=_transport(),
                        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})


def _transport() -> httpx.HTTPTransport:
    """httpx's transport, with sockets read in READ_SIZE pieces instead of httpcore's 64 KiB.

    Parsing each read costs the same Python time whatever its size, so big reads cut the CPU
    spent per byte about threefold on loopback. httpcore takes a network backend but httpx does
    not pass one through, hence the swap on its pool (kept if a future httpx renames it). The
    backend is also where checks on the resolved address belong: it sees every connection.
    """
    transport = httpx.HTTPTransport(retries=0)
    pool = getattr(transport, "_pool", None)
    if isinstance(pool, httpcore.ConnectionPool) and hasattr(pool, "_network_backend"):
        pool._network_backend = _Backend()
    return transport


class _Backend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _BigReads(self._inner.connect_tcp(host, port, timeout, local_address,
                                                 socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise httpcore.UnsupportedProtocol("imports do not use unix sockets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _BigReads(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max(max_bytes, READ_SIZE), timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _BigReads(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


@contextlib.contextmanager
def _open(client: httpx.Client, url: str, url_filter: urlfilter.UrlFilter,
          max_redirects: int) -> Iterator[httpx.Response]:
    """The streamed 2xx response for ``url``, following redirects that pass the filter.

    The first URL is checked again too: settings may have changed since the task was created.
    """
    _check_url(url_filter, url, "Import from")
    request = client.build_request("GET", url)
    for _hop in range(max_redirects + 1):
        response = client.send(request, stream=True)
        try:
            if response.next_request is None:
                _check_status(response)
                yield response
                return
            request = response.next_request
        finally:
            response.close()
        _check_url(url_filter, str(request.url), "Redirect to")
    raise errors.ScriptError(f"Too many redirects (more than {max_redirects}) from {url}")


def _check_url(url_filter: urlfilter.UrlFilter, url: str, what: str) -> None:
    try:
        url_filter.check(url)
    except errors.BadRequest as exc:
        raise errors.ScriptError(f"{what} {url} refused: {exc.message}") from exc


def _check_status(response: httpx.Response) -> None:
    if not response.is_success:
        raise errors.ScriptError(f"{response.url} answered HTTP {response.status_code} "
                                 f"{response.reason_phrase}".rstrip())


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or "Transfer-Encoding" in response.headers:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _failure(ctx: contract.ScriptContext, url: str, exc: Exception) -> errors.ScriptError:
    """The error the task fails with: what went wrong, said for the user."""
    if isinstance(exc, errors.ScriptError):
        return exc
    if isinstance(exc, errors.GlintError):
        return errors.ScriptError(exc.message)
    if isinstance(exc, httpx.TimeoutException):
        return errors.ScriptError(f"Timed out fetching {url} from {_host(exc)} "
                                  f"(no answer for {ctx.settings.import_timeout:g} seconds)")
    if isinstance(exc, httpx.ConnectError):
        return errors.ScriptError(f"Could not connect to {_host(exc)}: {exc}")
    if isinstance(exc, httpx.HTTPError):
        return errors.ScriptError(f"Fetching {url} from {_host(exc)} failed: {exc}")
    if isinstance(exc, OSError):
        return errors.ScriptError(f"Could not store the image data: {exc.strerror or exc}")
    ctx.logger.exception("import of %s failed with an unexpected error", url)
    return errors.ScriptError(f"Import failed due to an internal error ({type(exc).__name__})")


def _host(exc: httpx.HTTPError) -> str:
    try:
        request_url = exc.request.url
    except RuntimeError:  # raised before a request was made
        return "the server"
    port = f":{request_url.port}" if request_url.port is not None else ""
    return f"{request_url.host}{port}"
