"""Fetching image data from an http(s) URL into a store writer, for the scripts that import.

The URL passes the import URL filter (:mod:`glint.urlfilter`) before the first request and on
every redirect hop, which is followed here rather than by httpx, at most
``import_max_redirects`` of them; every connection is made by :class:`Backend`, to addresses
the filter checked after resolving the host. A redirect's ``Location`` is checked as sent,
before httpx parses it (:func:`check_location`): a malformed one fails the task saying so.
The body goes to :mod:`glint.scripts.intake` (format checks, then the store through
:func:`glint.datapath.copy`), with ``image_size_cap`` checked against ``Content-Length`` before
the first byte is read.

``import_timeout`` bounds connecting and each wait for data, not the whole download: a large
image on a live connection takes as long as it takes.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import ssl
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import Any

import h11
import httpcore
import httpx

from glint import buffers, datapath, digits, errors, urlfilter
from glint.scripts import contract

USER_AGENT = "glint-import"
# Bytes asked of the socket per read; a body's chunks are this size: the data path's batch,
# which it passes on as it is.
READ_SIZE = datapath.BATCH_SIZE


@contextlib.contextmanager
def body(ctx: contract.ScriptContext, url: str) -> Iterator[tuple[Iterator[bytes], int | None]]:
    """``url``'s body as chunks, with its announced length (None if not announced)."""
    settings = ctx.settings
    with client(settings) as http, open_url(http, url, urlfilter.UrlFilter.from_settings(settings),
                                            settings.import_max_redirects) as response:
        length = content_length(response)
        if length is not None and length > settings.image_size_cap:
            raise errors.TooLarge(f"Image data of {length} bytes exceeds the size cap of "
                                  f"{settings.image_size_cap} bytes")
        yield _raw_body(response, length, settings.import_timeout), length


def _raw_body(response: httpx.Response, length: int | None,
              timeout: float | None) -> Iterator[bytes]:
    """The body's bytes as sent: straight from the socket when that is safe, else through h11.

    With a Content-Length on a plain 200 response the body is read with ``recv`` on the socket
    (after the part h11 already buffered with the headers): no parsing and no copies in Python
    per read, which at 1 MiB reads was most of the CPU an import spent outside hashing. Errors
    are httpx's, as h11's path raises them. Anything else (chunked, an unknown length, a
    connection whose internals are not what this expects) goes through ``iter_raw``.
    """
    if length is None or response.status_code != 200:
        return response.iter_raw()
    sock, pending = _unread_body(response)
    if sock is None or pending is None:
        return response.iter_raw()
    return _socket_body(sock, pending, length, response.request, timeout)


def _unread_body(response: httpx.Response) -> tuple[socket.socket | None, bytes | None]:
    """The response's socket, and the body bytes h11 read with the headers (None: unknown).

    Private attributes of httpx and httpcore (response stream → httpcore connection → h11):
    if an upgrade renames one, this finds nothing and the body goes through h11 as before.
    """
    state: Any = response.stream
    for name in ("_stream", "_httpcore_stream", "_stream", "_connection", "_h11_state"):
        state = getattr(state, name, None)
    network_stream = response.extensions.get("network_stream")
    if not isinstance(state, h11.Connection) or state.their_state is not h11.SEND_BODY \
            or not isinstance(network_stream, httpcore.NetworkStream):
        return None, None
    sock = network_stream.get_extra_info("socket")
    pending, closed = state.trailing_data
    if not isinstance(sock, socket.socket) or closed:
        return None, None
    return sock, bytes(pending)


def _socket_body(sock: socket.socket, pending: bytes, length: int, request: httpx.Request,
                 timeout: float | None) -> Iterator[bytes]:
    """``length`` bytes: ``pending`` first, then the socket's, as views of full READ_SIZE buffers.

    Each buffer comes from a small pool (:mod:`glint.buffers`) and is filled with ``recv_into``
    to the brim (the last one to the end of the body): no new object per read, and the data path
    gets chunks it need not join. The data path gives each buffer back once it is done with it.
    """
    pool = buffers.Pool(READ_SIZE, datapath.POOL_KEEP)
    head = memoryview(pending)[:length]
    del pending  # held through ``head`` until it is copied out, not for the whole body
    sock.settimeout(timeout)
    done = 0
    while done < length:
        size = min(length - done, READ_SIZE)
        chunk = buffers.view(pool.take(), size)
        filled = min(len(head), size)
        if head:
            chunk[:filled] = head[:filled]
            head = head[filled:] if filled < len(head) else memoryview(b"")
        while filled < size:
            filled += _recv_into(sock, chunk[filled:], request, done + filled, length)
        done += size
        yield chunk  # type: ignore[misc]  # a bytes-like view: every consumer takes one


def _recv_into(sock: socket.socket, into: memoryview, request: httpx.Request, received: int,
               length: int) -> int:
    """Bytes read into ``into`` (at least one), with httpx's errors as h11's path raises them."""
    try:
        count = sock.recv_into(into)
    except TimeoutError as exc:  # socket.timeout
        raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
    except OSError as exc:
        raise httpx.ReadError(str(exc), request=request) from exc
    if not count:  # what h11 says of a body cut short
        raise httpx.RemoteProtocolError(
            f"peer closed connection without sending complete message body: received "
            f"{received} bytes, expected {length}", request=request)
    return count


def client(settings: contract.ScriptSettings) -> httpx.Client:
    # trust_env=False: no proxy or .netrc from the environment may route around the URL filter.
    # Accept-Encoding identity: the image is the bytes as served, and Content-Length counts them.
    url_filter = urlfilter.UrlFilter.from_settings(settings)
    return httpx.Client(timeout=settings.import_timeout, follow_redirects=False, trust_env=False,
                        transport=transport(url_filter),
                        event_hooks={"response": [functools.partial(check_location, url_filter)]},
                        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})


def check_location(url_filter: urlfilter.UrlFilter, response: httpx.Response) -> None:
    """Response hook: a redirect's ``Location``, as sent, must be a URL the filter takes.

    It runs before httpx reads the header, which for some malformed values raises an error
    that names nothing (``InvalidURL``), and reads others more kindly than the filter would
    (full-width digits in a port; an absolute URL without a host borrows the request's). A
    relative reference is resolved against the request's URL first.
    """
    if not response.has_redirect_location:
        return
    location = response.headers["Location"]
    source = str(response.request.url)
    target = location if _absolute(location) else urllib.parse.urljoin(source, location)
    try:
        url_filter.check(target)
    except errors.MalformedUrl as exc:
        raise errors.ScriptError(f"{source} redirected to {location[:200]!r}, which is not a "
                                 f"valid URL ({exc.message})") from None
    except errors.BadRequest as exc:
        raise errors.ScriptError(f"Redirect to {target[:200]} refused: {exc.message}") from None


def _absolute(reference: str) -> bool:
    try:
        return bool(urllib.parse.urlsplit(reference).scheme)
    except ValueError:  # checked as it is: the filter says what does not parse
        return True


def transport(url_filter: urlfilter.UrlFilter | None = None) -> httpx.HTTPTransport:
    """httpx's transport on glint's network backend: checked addresses, big reads.

    The backend sees every connection, so it is where the filter's rules on the *resolved*
    address apply (:meth:`glint.urlfilter.UrlFilter.resolve`); without ``url_filter`` the
    default rules do (global addresses only, ports 80 and 443). It also reads sockets in
    READ_SIZE pieces instead of httpcore's 64 KiB: parsing each read costs the same Python time
    whatever its size, so big reads cut the CPU spent per byte about threefold on loopback.
    httpcore takes a network backend but httpx does not pass one through, hence the swap on its
    pool; if a future httpx renames it, connections are refused rather than left unchecked.
    """
    http_transport = httpx.HTTPTransport(retries=0)
    pool = getattr(http_transport, "_pool", None)
    if not (isinstance(pool, httpcore.ConnectionPool) and hasattr(pool, "_network_backend")):
        raise RuntimeError("httpx's transport has no httpcore pool to give glint's backend to")
    pool._network_backend = Backend(url_filter or urlfilter.UrlFilter())
    return http_transport


class Backend(httpcore.NetworkBackend):
    """Connects only to addresses the URL filter checked, never to a name resolved again."""

    def __init__(self, url_filter: urlfilter.UrlFilter) -> None:
        self._inner = httpcore.SyncBackend()
        self._filter = url_filter

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        try:
            checked = self._filter.resolve(host, port)
        except errors.BadRequest as exc:
            raise errors.ScriptError(f"Connection to {host}:{port} refused: "
                                     f"{exc.message}") from None
        except OSError as exc:  # socket.gaierror: the name does not resolve
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        failure: Exception = httpcore.ConnectError(f"{host} resolves to no address")
        for address in checked:
            try:
                return _BigReads(self._inner.connect_tcp(str(address), port, timeout,
                                                         local_address, socket_options))
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise httpcore.UnsupportedProtocol("imports do not use unix sockets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _BigReads(httpcore.NetworkStream):
    """Reads of READ_SIZE, but the first: it brings a response's headers, and the part of the
    body that came with it stays in h11's buffer until the import ends (and its copy, the
    body's head, until it is copied out): with a first read of READ_SIZE, up to 2 MiB an
    import, in the malloc arena of its thread, times the imports running at once."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner
        self._big = False

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if not self._big:
            self._big = True
            return self._inner.read(max_bytes, timeout)
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
def open_url(http: httpx.Client, url: str, url_filter: urlfilter.UrlFilter,
             max_redirects: int) -> Iterator[httpx.Response]:
    """The streamed 2xx response for ``url``, following redirects that pass the filter.

    The first URL is checked again too: settings may have changed since the task was created.
    """
    _check_url(url_filter, url, "Import from")
    request = http.build_request("GET", url)
    for _hop in range(max_redirects + 1):
        response = http.send(request, stream=True)
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


def content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or "Transfer-Encoding" in response.headers:
        return None
    return digits.parse(value)


def failure(ctx: contract.ScriptContext, url: str, exc: Exception) -> errors.ScriptError:
    """The error a task fails with after fetching ``url`` went wrong, said for the user."""
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
    if isinstance(exc, httpx.InvalidURL):  # a URL the filter passed and httpx did not
        return errors.ScriptError(f"Fetching {url} failed: a URL on the way is not valid "
                                  f"({exc})")
    if isinstance(exc, OSError):  # from a store that does not say what it means
        return errors.ScriptError(errors.store_error(exc).message)
    ctx.logger.exception("import of %s failed with an unexpected error", url)
    return errors.ScriptError(f"Import failed due to an internal error ({type(exc).__name__})")


def _host(exc: httpx.HTTPError) -> str:
    try:
        request_url = exc.request.url
    except RuntimeError:  # raised before a request was made
        return "the server"
    port = f":{request_url.port}" if request_url.port is not None else ""
    return f"{request_url.host}{port}"
