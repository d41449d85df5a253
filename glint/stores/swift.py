"""The ``swift`` store: image bytes as objects in an OpenStack Swift container.

An image smaller than one segment is one object, named by the image id. A larger one is a
Static Large Object: segments ``<image id>/<upload id>/<number>`` in the ``<container>_segments``
container, sent several at once, each checked by its ETag (Swift also checks the md5 glint
sends with it), then a manifest under the image id that records its upload id. Deleting the
manifest and every segment under ``<image id>/`` removes the image. Segments that no manifest
names are an unfinished write; the reaper removes them once older than ``store_tmp_max_age``.

Needs the extra ``glint[swift]`` (python-swiftclient; keystoneauth1 for Keystone v3).
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import json
import logging
import pathlib
import pickle
import queue
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

from glint import errors
from glint.settings import Settings
from glint.stores import base, reads, segments

LOG = logging.getLogger(__name__)
UPLOAD_META = "x-object-meta-glint-upload"  # the upload id of a manifest's segments

try:
    import swiftclient
except ImportError:  # pragma: no cover - depends on the install
    swiftclient = None


def _need_client() -> None:
    if swiftclient is None:  # pragma: no cover - depends on the install
        raise errors.ConfigurationError("the swift store needs python-swiftclient: "
                                        "pip install 'glint[swift]'")


class SwiftWriter(segments.SegmentedWriter):
    def __init__(self, store: SwiftStore, key: str) -> None:
        super().__init__(store="swift", segment_size=store.segment_size,
                         in_flight=store.segments_in_flight)
        self._swift = store
        self._key = key
        self._upload_id = uuid.uuid4().hex

    def _segment_name(self, number: int) -> str:
        return f"{self._key}/{self._upload_id}/{number:05d}"

    def _put_segment(self, number: int, data: memoryview) -> str:
        md5 = segments.md5(data)
        etag = self._swift.put(self._swift.segment_container, self._segment_name(number), data,
                               md5)
        self.check_etag(f"segment {number}", etag, md5)
        return md5

    def _put_single(self, data: memoryview) -> str:
        old = self._swift.upload_of(self._key)
        md5 = segments.md5(data)
        self.check_etag(f"image data {self._key!r}",
                        self._swift.put(self._swift.container, self._key, data, md5), md5)
        if old is not None:
            self._swift.remove_upload(self._key, old)
        return self._key

    def _put_manifest(self, parts: list[segments.Segment]) -> str:
        manifest = [{"path": f"/{self._swift.segment_container}/{self._segment_name(p.number)}",
                     "etag": p.etag, "size_bytes": p.size} for p in parts]
        old = self._swift.upload_of(self._key)
        with self._swift.connection() as conn:
            conn.put_object(self._swift.container, self._key, json.dumps(manifest),
                            query_string="multipart-manifest=put",
                            headers={UPLOAD_META: self._upload_id})
        if old is not None and old != self._upload_id:
            self._swift.remove_upload(self._key, old)  # the segments of the image it replaced
        return self._key

    def _discard(self, parts: list[segments.Segment]) -> None:
        self._swift.remove_upload(self._key, self._upload_id)

    def _error(self, exc: Exception) -> errors.StoreError:
        return self._swift.error(exc, f"writing image data {self._key!r}")


class SwiftStore(base.StoreBase):
    """Image bytes in a Swift container (and its ``_segments`` container)."""

    name = "swift"
    shared = True  # other nodes write to it: only the reaper's sweep, by age, removes leftovers

    def __init__(self, *, auth_url: str, user: str, key: str, auth_version: str = "3",
                 project_name: str | None = None, project_domain_name: str = "Default",
                 user_domain_name: str = "Default", region_name: str | None = None,
                 interface: str = "public", storage_url: str | None = None,
                 container: str = "glint", create_container: bool = False,
                 segment_size: int = 8 * segments.MiB, segments_in_flight: int = 3,
                 retries: int = 5, ca_file: str | None = None, insecure: bool = False,
                 timeout: float = 60.0, read_ahead: int = 4) -> None:
        _need_client()
        self.auth_url = auth_url
        self.container = container
        self.segment_container = f"{container}_segments"
        self.segment_size = segment_size
        self.segments_in_flight = segments_in_flight
        self.read_ahead = read_ahead
        self._options: dict[str, Any] = {
            "retries": retries, "starting_backoff": 0.5, "max_backoff": 16,
            "timeout": timeout, "insecure": insecure, "cacert": ca_file,
            "os_options": {"region_name": region_name, "endpoint_type": f"{interface}URL",
                           "interface": interface, "service_type": "object-store",
                           "object_storage_url": storage_url},
        }
        if auth_version == "1":
            self._options.update(authurl=auth_url, user=user, key=key, auth_version="1",
                                 preauthurl=storage_url)
        else:
            # A closure, not a functools.partial: a partial's repr would show the password.
            def new_session() -> Any:
                return _keystone_session(auth_url, user, key, project_name, project_domain_name,
                                         user_domain_name, ca_file, insecure)

            self._new_session = new_session
            self._options["session"] = new_session()
        self.retries = retries
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._idle_once: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.check(create_container)

    @classmethod
    def from_settings(cls, settings: Settings, path: pathlib.Path | None = None) -> SwiftStore:
        """The store the ``swift_*`` settings describe (checked: see :meth:`check`); it keeps
        nothing in ``path``."""
        del path
        if not settings.swift_auth_url or not settings.swift_user or settings.swift_key is None:
            raise errors.ConfigurationError(
                "the swift store needs swift_auth_url, swift_user and swift_key")
        return cls(auth_url=settings.swift_auth_url, user=settings.swift_user,
                   key=settings.swift_key.get_secret_value(),
                   auth_version=settings.swift_auth_version,
                   project_name=settings.swift_project_name,
                   project_domain_name=settings.swift_project_domain_name,
                   user_domain_name=settings.swift_user_domain_name,
                   region_name=settings.swift_region_name, interface=settings.swift_interface,
                   storage_url=settings.swift_storage_url, container=settings.swift_container,
                   create_container=settings.swift_create_container,
                   segment_size=settings.swift_segment_size,
                   segments_in_flight=settings.swift_segments_in_flight,
                   retries=settings.swift_retries, ca_file=settings.swift_ca_file,
                   insecure=settings.swift_insecure)

    def check(self, create: bool) -> None:
        """Authenticate and find the containers (creating them when ``create``).

        ConfigurationError, naming what to fix, when the credentials, the endpoint or a
        container are wrong: raised when glint starts, not at the first upload.
        """
        for container in (self.container, self.segment_container):
            try:
                with self.connection() as conn:
                    conn.head_container(container)
                continue
            except Exception as exc:
                if not _status(exc) == 404:
                    raise errors.ConfigurationError(self.error(exc, "starting").message) from None
            if not create:
                raise errors.ConfigurationError(
                    f"swift store: container {container!r} does not exist; create it or set "
                    "swift_create_container = true")
            try:
                with self.connection() as conn:
                    conn.put_container(container)
            except Exception as exc:
                raise errors.ConfigurationError(
                    self.error(exc, f"creating container {container!r}").message) from None

    def after_fork(self) -> None:
        """In a forked child: an empty pool and a Keystone session of its own. The pooled
        connections and the session's keep-alive sockets are the parent's: two processes
        sending requests on one socket would read each other's answers."""
        self._idle = queue.SimpleQueue()
        self._idle_once = queue.SimpleQueue()
        if "session" in self._options:
            self._options["session"] = self._new_session()

    def probe(self) -> None:
        """Ask Swift for the container (the health check); StoreError when it cannot answer."""
        try:
            with self.connection() as conn:
                conn.head_container(self.container)
        except Exception as exc:
            raise self.error(exc, f"checking container {self.container!r}") from None

    @contextlib.contextmanager
    def connection(self, retrying: bool = True) -> Iterator[Any]:
        """A connection of the pool (swiftclient's are not thread-safe: one user at a time);
        ``retrying`` false: one whose requests swiftclient does not retry."""
        idle = self._idle if retrying else self._idle_once
        try:
            conn = idle.get_nowait()
        except queue.Empty:
            conn = swiftclient.Connection(**(self._options if retrying
                                             else self._options | {"retries": 0}))
        try:
            yield conn
        except Exception as exc:
            if _status(exc) == 401:
                conn.token = None  # authenticate again on the next request
            raise
        finally:
            idle.put(conn)

    def writer(self, image_id: str) -> SwiftWriter:
        return SwiftWriter(self, _key(image_id))

    def read(self, location: str, offset: int = 0, length: int | None = None,
             chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        key = _key(location)
        if length == 0:
            self.size(location)
            return iter(())
        headers = reads.range_header(offset, length)
        conn = self._connection_for_read()
        try:
            _, body = conn.get_object(self.container, key, resp_chunk_size=chunk_size,
                                      headers=headers)
        except Exception as exc:
            self._idle.put(conn)
            raise self.error(exc, f"reading image data {location!r}") from None
        chunks = self._translated(body, location)
        return reads.read_ahead(reads.exact_chunks(chunks, chunk_size), self.read_ahead,
                                   on_close=lambda: self._close_body(body, conn))

    def size(self, location: str) -> int:
        try:
            with self.connection() as conn:
                headers = conn.head_object(self.container, _key(location))
        except Exception as exc:
            raise self.error(exc, f"reading image data {location!r}") from None
        return int(headers["content-length"])

    def delete(self, location: str) -> None:
        """Remove the object, every segment, and any unfinished write for the same key.

        The manifest goes first, so a reader never sees an object with segments missing.
        (SLO's ``multipart-manifest=delete`` would leave a plain object in place.)
        """
        key = _key(location)
        try:
            with self.connection() as conn:
                conn.delete_object(self.container, key)
        except Exception as exc:
            if _status(exc) != 404:
                raise self.error(exc, f"deleting image data {location!r}") from None
        self._delete_segments(f"{key}/")

    def local_path(self, location: str) -> pathlib.Path | None:
        return None

    def locations(self) -> Iterator[str]:
        with self.connection() as conn:
            _, listing = conn.get_container(self.container, full_listing=True)
        return iter([entry["name"] for entry in listing])

    def remove_temporary_files(self, older_than: float | None = None) -> int:
        """Remove segments no manifest names (a killed or failed write's); return how many
        writes were removed. With ``older_than`` (seconds), only writes whose newest segment
        is that old: a write under way on another node keeps adding segments.
        """
        uploads: dict[tuple[str, str], float] = {}
        try:
            with self.connection() as conn:
                _, listing = conn.get_container(self.segment_container, full_listing=True)
        except Exception as exc:
            raise self.error(exc, "sweeping unfinished writes") from None
        for entry in listing:
            key, upload, _ = entry["name"].rsplit("/", 2)
            stamp = _timestamp(entry["last_modified"])
            uploads[key, upload] = max(stamp, uploads.get((key, upload), 0.0))
        cutoff = None if older_than is None else time.time() - older_than
        removed = 0
        for (key, upload), newest in uploads.items():
            if (cutoff is not None and newest >= cutoff) or self.upload_of(key) == upload:
                continue
            self.remove_upload(key, upload)
            removed += 1
        return removed

    # -- helpers of the writer and the sweep ----------------------------------------------

    def upload_of(self, key: str) -> str | None:
        """The upload id of the manifest stored under ``key``; None without one."""
        try:
            with self.connection() as conn:
                headers = conn.head_object(self.container, key)
        except Exception as exc:
            if _status(exc) == 404:
                return None
            raise
        upload: str | None = headers.get(UPLOAD_META)
        return upload

    def remove_upload(self, key: str, upload: str) -> None:
        self._delete_segments(f"{key}/{upload}/")

    def error(self, exc: BaseException, doing: str) -> errors.StoreError:
        """A StoreError for a swiftclient (or connection) error, naming the store but never
        a credential: only the status, the reason and the host are kept."""
        status = _status(exc)
        where = urllib.parse.urlsplit(self.auth_url).netloc
        if status == 404 and doing.startswith("reading"):
            location = doing.split(" ", 3)[-1]
            return errors.StoreError(f"image data {location} is missing from the store")
        if status in (401, 403):
            reason = ("authentication failed: check swift_user and swift_key" if status == 401
                      else "access denied (403 Forbidden): the account may not do this")
            return errors.StoreUnwritable(f"swift store at {where}: {doing}: {reason}")
        if status in (413, 507):  # a quota spent, a full disk
            return errors.StoreFull(f"swift store at {where}: {doing}: no room "
                                    f"({status} {getattr(exc, 'http_reason', '') or ''})".rstrip())
        if status is not None:
            reason = getattr(exc, "http_reason", "") or ""
            return errors.StoreError(f"swift store at {where}: {doing}: {status} {reason}".rstrip())
        return errors.StoreError(f"swift store at {where}: {doing}: {segments.describe(exc)}")

    def put(self, container: str, name: str, data: memoryview, md5: str) -> str:
        """PUT ``data`` (checked by Swift against ``md5``); return the ETag. A dropped
        connection, a 5xx or an expired token is retried with backoff (0.5 s, doubling, at
        most 16 s), up to ``retries`` times.

        glint retries here rather than swiftclient, which resends only a body it can rewind:
        a file object, sent 16 KiB per call, or a copy of the bytes. The body goes as one
        buffer, without a copy (see :func:`_body`).
        """
        delay = 0.5
        for attempt in itertools.count():
            try:
                with self.connection(retrying=False) as conn:
                    etag: str = conn.put_object(container, name, _body(data),
                                                content_length=data.nbytes, etag=md5,
                                                content_type="application/octet-stream")
                    return etag
            except Exception as exc:
                status = _status(exc)
                if attempt >= self.retries or not (status is None or status >= 500
                                                   or status in (401, 408, 429)):
                    raise
                LOG.info("swift store: PUT %s/%s failed (%s); again in %g s", container, name,
                         status or type(exc).__name__, delay)
                time.sleep(delay)
                delay = min(2 * delay, 16.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def _delete_segments(self, prefix: str) -> None:
        with self.connection() as conn:
            try:
                _, listing = conn.get_container(self.segment_container, prefix=prefix,
                                                full_listing=True)
            except Exception as exc:
                if _status(exc) == 404:
                    return
                raise
            for entry in listing:
                try:
                    conn.delete_object(self.segment_container, entry["name"])
                except Exception as exc:
                    if _status(exc) != 404:  # another sweep got there first
                        raise

    def _connection_for_read(self) -> Any:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return swiftclient.Connection(**self._options)

    def _close_body(self, body: Any, conn: Any) -> None:
        with contextlib.suppress(Exception):
            body.close()
        self._idle.put(conn)

    def _translated(self, body: Iterator[bytes], location: str) -> Iterator[bytes]:
        try:
            yield from body
        except Exception as exc:
            raise self.error(exc, f"reading image data {location!r}") from None


def _body(data: memoryview) -> pickle.PickleBuffer | bytes:
    """``data`` as a request body that python-requests and urllib3 send in one ``sendall``.

    A ``memoryview`` or ``bytearray`` is iterable, so swiftclient and requests would take it
    for a stream of chunks; ``bytes`` would be a copy of the segment. ``PickleBuffer`` is the
    standard library's plain buffer: not iterable, no ``read``, so requests passes it on as
    it is and urllib3 sends it as a buffer (the caller sets the ``Content-Length``). It wraps
    the segment's ``bytearray`` itself, never a ``memoryview``: CPython 3.11's garbage
    collector crashes on a PickleBuffer of a memoryview caught in a reference cycle (requests
    makes cycles). A shorter last segment goes as a copy.
    """
    whole = segments.exact(data)
    return pickle.PickleBuffer(whole) if isinstance(whole, bytearray) else whole


def _keystone_session(auth_url: str, user: str, key: str, project_name: str | None,
                      project_domain_name: str, user_domain_name: str, ca_file: str | None,
                      insecure: bool) -> Any:
    try:
        from keystoneauth1 import session
        from keystoneauth1.identity import v3
    except ImportError:  # pragma: no cover - depends on the install
        raise errors.ConfigurationError("the swift store's Keystone v3 auth needs keystoneauth1: "
                                        "pip install 'glint[swift]'") from None
    auth = v3.Password(auth_url=auth_url, username=user, password=key, project_name=project_name,
                       project_domain_name=project_domain_name,
                       user_domain_name=user_domain_name)
    return session.Session(auth=auth, verify=False if insecure else (ca_file or True))


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "http_status", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _timestamp(value: str) -> float:
    return datetime.datetime.fromisoformat(value).replace(tzinfo=datetime.UTC).timestamp()


def _key(name: str) -> str:
    # Locations are glint-made keys; a slash would reach into another image's segments.
    if not name or "/" in name or name.startswith(".") or "\x00" in name:
        raise errors.StoreError(f"invalid store key {name!r}")
    return name

