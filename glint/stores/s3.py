"""The ``s3`` store: image bytes as objects in a bucket of an S3-compatible service.

An image smaller than one part is one ``PutObject``; a larger one is a multipart upload whose
parts are sent several at once. Each request signs the SHA-256 of its body (SigV4's
``x-amz-content-sha256``, over https too), and the server refuses a part that does not match
it: the same guarantee as a ``Content-MD5``, at less than half the CPU. An aborted write
aborts its multipart upload; the reaper aborts uploads a killed worker left, once older than
``store_tmp_max_age``.

boto3 is set up to work on AWS and on Swift's s3api alike: SigV4, checksums only when an
operation requires them (Swift 2.30 rejects ``aws-chunked`` bodies and ignores the CRC32
headers boto3 ≥ 1.36 sends by default), path-style addressing by default.

Needs the extra ``glint[s3]`` (boto3).
"""

from __future__ import annotations

import logging
import pathlib
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

from glint import errors
from glint.settings import Settings
from glint.stores import base, reads, segments

LOG = logging.getLogger(__name__)

try:
    import boto3
    from botocore.config import Config
except ImportError:  # pragma: no cover - depends on the install
    boto3 = None


class S3Writer(segments.SegmentedWriter):
    def __init__(self, store: S3Store, key: str) -> None:
        super().__init__(store="s3", segment_size=store.part_size, in_flight=store.parts_in_flight)
        self._s3 = store
        self._key = key
        self._upload_id: str | None = None
        self._lock = threading.Lock()

    def _started(self) -> str:
        with self._lock:  # the first part to go starts the multipart upload
            if self._upload_id is None:
                self._upload_id = self._s3.client.create_multipart_upload(
                    Bucket=self._s3.bucket, Key=self._key)["UploadId"]
            return self._upload_id

    def _put_segment(self, number: int, data: memoryview) -> str:
        answer = self._s3.client.upload_part(
            Bucket=self._s3.bucket, Key=self._key, UploadId=self._started(), PartNumber=number,
            Body=segments.exact(data), ContentLength=data.nbytes)
        etag: str = answer["ETag"]
        return etag

    def _put_single(self, data: memoryview) -> str:
        self._s3.client.put_object(Bucket=self._s3.bucket, Key=self._key,
                                   Body=segments.exact(data), ContentLength=data.nbytes)
        return self._key

    def _put_manifest(self, parts: list[segments.Segment]) -> str:
        self._s3.client.complete_multipart_upload(
            Bucket=self._s3.bucket, Key=self._key, UploadId=self._started(),
            MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": f'"{p.etag}"'}
                                       for p in parts]})
        return self._key

    def _discard(self, parts: list[segments.Segment]) -> None:
        if self._upload_id is not None:
            self._s3.abort(self._key, self._upload_id)

    def _error(self, exc: Exception) -> errors.StoreError:
        return self._s3.error(exc, f"writing image data {self._key!r}")


class S3Store(base.StoreBase):
    """Image bytes in an S3 bucket."""

    name = "s3"
    shared = True  # other nodes write to it: only the reaper's sweep, by age, removes leftovers

    def __init__(self, *, access_key: str, secret_key: str, bucket: str = "glint",
                 endpoint: str | None = None, region: str = "us-east-1",
                 addressing_style: str = "path", create_bucket: bool = False,
                 part_size: int = 8 * segments.MiB, parts_in_flight: int = 3,
                 retries: int = 5, ca_file: str | None = None, insecure: bool = False,
                 read_ahead: int = 4) -> None:
        if boto3 is None:  # pragma: no cover - depends on the install
            raise errors.ConfigurationError("the s3 store needs boto3: pip install 'glint[s3]'")
        self.bucket = bucket
        self.endpoint = endpoint
        self.region = region
        self.part_size = part_size
        self.parts_in_flight = parts_in_flight
        self.read_ahead = read_ahead
        # Every request signs the SHA-256 of its payload, over https too, and the server refuses
        # a body that does not match it: the integrity check of each part, cheaper than a
        # Content-MD5 (SHA-256 has CPU instructions, md5 has none).
        config = Config(signature_version="s3v4",
                        s3={"addressing_style": addressing_style,
                            "payload_signing_enabled": True},
                        request_checksum_calculation="when_required",
                        response_checksum_validation="when_required",
                        retries={"mode": "standard", "max_attempts": retries + 1},
                        max_pool_connections=2 * parts_in_flight + 8)
        # A closure, not a functools.partial: a partial's repr would show the secret key.
        def new_client() -> Any:
            return boto3.session.Session().client(
                "s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=access_key,
                aws_secret_access_key=secret_key, config=config,
                verify=False if insecure else (ca_file or None))

        self._new_client = new_client
        self.client: Any = new_client()
        self.check(create_bucket)

    @classmethod
    def from_settings(cls, settings: Settings, path: pathlib.Path | None = None) -> S3Store:
        """The store the ``s3_*`` settings describe (checked: see :meth:`check`); it keeps
        nothing in ``path``."""
        del path
        if not settings.s3_access_key or settings.s3_secret_key is None:
            raise errors.ConfigurationError("the s3 store needs s3_access_key and s3_secret_key")
        return cls(access_key=settings.s3_access_key,
                   secret_key=settings.s3_secret_key.get_secret_value(),
                   bucket=settings.s3_bucket, endpoint=settings.s3_endpoint,
                   region=settings.s3_region, addressing_style=settings.s3_addressing_style,
                   create_bucket=settings.s3_create_bucket, part_size=settings.s3_part_size,
                   parts_in_flight=settings.s3_parts_in_flight, retries=settings.s3_retries,
                   ca_file=settings.s3_ca_file, insecure=settings.s3_insecure)

    def check(self, create: bool) -> None:
        """Reach the bucket with the credentials (creating it when ``create``).

        ConfigurationError, naming what to fix, when the credentials, the endpoint or the
        bucket are wrong: raised when glint starts, not at the first upload.
        """
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except Exception as exc:
            if _code(exc) not in ("404", "NoSuchBucket"):
                raise errors.ConfigurationError(self.error(exc, "starting").message) from None
        if not create:
            raise errors.ConfigurationError(f"s3 store: bucket {self.bucket!r} does not exist; "
                                            "create it or set s3_create_bucket = true")
        where = {} if self.region == "us-east-1" else {
            "CreateBucketConfiguration": {"LocationConstraint": self.region}}
        try:
            self.client.create_bucket(Bucket=self.bucket, **where)
        except Exception as exc:
            if _code(exc) != "BucketAlreadyOwnedByYou":  # another node made it meanwhile
                raise errors.ConfigurationError(
                    self.error(exc, f"creating bucket {self.bucket!r}").message) from None

    def after_fork(self) -> None:
        """In a forked child: a client of its own (the client's connection pool holds the
        parent's keep-alive sockets, and botocore's session its locks)."""
        self.client = self._new_client()

    def probe(self) -> None:
        """Ask for the bucket (the health check); StoreError when it cannot answer."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise self.error(exc, f"checking bucket {self.bucket!r}") from None

    def writer(self, image_id: str) -> S3Writer:
        return S3Writer(self, _key(image_id))

    def read(self, location: str, offset: int = 0, length: int | None = None,
             chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        key = _key(location)
        if length == 0:
            self.size(location)
            return iter(())
        ranged = reads.range_header(offset, length)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key, **ranged)["Body"]
        except Exception as exc:
            raise self.error(exc, f"reading image data {location!r}") from None
        chunks = self._translated(body.iter_chunks(chunk_size), location)
        return reads.read_ahead(reads.exact_chunks(chunks, chunk_size), self.read_ahead,
                                   on_close=body.close)

    def size(self, location: str) -> int:
        try:
            answer = self.client.head_object(Bucket=self.bucket, Key=_key(location))
        except Exception as exc:
            raise self.error(exc, f"reading image data {location!r}") from None
        return int(answer["ContentLength"])

    def delete(self, location: str) -> None:
        """Remove the object, and any unfinished multipart upload of the same key."""
        key = _key(location)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _code(exc) not in ("404", "NoSuchKey"):
                raise self.error(exc, f"deleting image data {location!r}") from None
        for upload in self._uploads(prefix=key):
            if upload["Key"] == key:
                self.abort(key, upload["UploadId"])

    def local_path(self, location: str) -> pathlib.Path | None:
        return None

    def locations(self) -> Iterator[str]:
        names: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            names.extend(entry["Key"] for entry in page.get("Contents", ()))
        return iter(names)

    def remove_temporary_files(self, older_than: float | None = None) -> int:
        """Abort multipart uploads a killed or failed write left; return how many. With
        ``older_than`` (seconds), only those started that long ago (the S3 API tells no
        later activity; ``store_tmp_max_age`` outlasts the longest task anyway).
        """
        cutoff = None if older_than is None else time.time() - older_than
        removed = 0
        try:
            uploads = self._uploads()
        except Exception as exc:
            raise self.error(exc, "sweeping unfinished writes") from None
        for upload in uploads:
            if cutoff is not None and upload["Initiated"].timestamp() >= cutoff:
                continue
            self.abort(upload["Key"], upload["UploadId"])
            removed += 1
        return removed

    def abort(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except Exception as exc:
            if _code(exc) not in ("404", "NoSuchUpload"):  # another sweep got there first
                raise

    def error(self, exc: BaseException, doing: str) -> errors.StoreError:
        """A StoreError for a botocore error, naming the store and never a credential."""
        code = _code(exc)
        where = urllib.parse.urlsplit(self.endpoint).netloc if self.endpoint else self.region
        if code in ("404", "NoSuchKey") and doing.startswith("reading"):
            location = doing.split(" ", 3)[-1]
            return errors.StoreError(f"image data {location} is missing from the store")
        if code in ("EntityTooLarge", "QuotaExceeded", "InsufficientStorage"):
            return errors.StoreFull(f"s3 store at {where}: {doing}: no room ({code})")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "AccessDenied"):
            return errors.StoreUnwritable(
                f"s3 store at {where}: {doing}: access denied ({code}): check s3_access_key, "
                "s3_secret_key and the bucket's permissions")
        if code is not None:
            return errors.StoreError(f"s3 store at {where}: {doing}: {code}")
        if isinstance(exc, errors.StoreError):
            return exc
        return errors.StoreError(f"s3 store at {where}: {doing}: {segments.describe(exc)}")

    def _uploads(self, prefix: str = "") -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            found.extend(page.get("Uploads", ()))
        return found

    def _translated(self, chunks: Iterator[bytes], location: str) -> Iterator[bytes]:
        try:
            yield from chunks
        except Exception as exc:
            raise self.error(exc, f"reading image data {location!r}") from None


def _code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    return str(code) if code is not None else None


def _key(name: str) -> str:
    # Locations are glint-made keys (image ids).
    if not name or "/" in name or name.startswith(".") or "\x00" in name:
        raise errors.StoreError(f"invalid store key {name!r}")
    return name
