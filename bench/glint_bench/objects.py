"""The object stores: glint's import, upload and download into Swift and S3 against the
plain client library moving the same bytes to the same server.

The server is the one-node Swift of shared/tools/swift/start-swift (its S3 API for ``s3``),
started if it is down. The limits are the client libraries at their best on this server:
python-swiftclient's own segmented upload (``SwiftService.upload``, SLO, the same segment size
and threads as glint) and one streamed GET; boto3's ``upload_file`` (multipart, the same part
size and concurrency) and one streamed ``get_object``.
"""

from __future__ import annotations

import os
import pathlib
import secrets
import subprocess
import time
from typing import Any

from glint_bench import stats

# Segment (part) size and segments in flight, for glint and the client libraries alike;
# glint's defaults unless BENCH_SEGMENT_MIB / BENCH_IN_FLIGHT say otherwise.
SEGMENT_MIB = int(os.environ.get("BENCH_SEGMENT_MIB", 8))
IN_FLIGHT = int(os.environ.get("BENCH_IN_FLIGHT", 3))
CHUNK = 1024 * 1024
# glint's transfers and the client library's they are judged against. ``import_unsized`` is an
# import from a source that sends no Content-Length (the server's peak RSS target is for it).
AGAINST = {"import": "upload", "import_unsized": "upload", "upload": "upload",
           "download": "download"}
HERE = pathlib.Path(__file__).resolve()


class Unavailable(Exception):
    """Swift could not be started (the section is skipped with this note)."""


def start_swift() -> dict[str, str]:
    """start-swift's environment (``GLINT_SWIFT_*``, ``GLINT_S3_*``), starting it if down."""
    root = HERE.parents[2]
    for candidate in (os.environ.get("GLINT_START_SWIFT"),
                      root.parent / "shared/tools/swift/start-swift",
                      pathlib.Path("/work/shared/tools/swift/start-swift")):
        if candidate and pathlib.Path(candidate).is_file():
            run = subprocess.run(["bash", str(candidate), "start"], capture_output=True,
                                 text=True, timeout=180, check=False)
            if run.returncode != 0:
                raise Unavailable(f"start-swift failed: {run.stderr.strip()[-300:]}")
            return dict(line.removeprefix("export ").split("=", 1)
                        for line in run.stdout.splitlines() if line.startswith("export "))
    raise Unavailable("start-swift not found (shared/tools/swift beside the repository)")


def glint_settings(kind: str, env: dict[str, str], name: str) -> dict[str, str]:
    """``glint serve`` settings for the ``kind`` store in container/bucket ``name``."""
    if kind == "swift":
        return {"store": "swift", "swift_auth_url": env["GLINT_SWIFT_AUTH_URL"],
                "swift_auth_version": "1", "swift_user": env["GLINT_SWIFT_USER"],
                "swift_key": env["GLINT_SWIFT_KEY"], "swift_container": name,
                "swift_create_container": "true",
                "swift_segment_size": str(SEGMENT_MIB * CHUNK),
                "swift_segments_in_flight": str(IN_FLIGHT)}
    return {"store": "s3", "s3_endpoint": env["GLINT_S3_ENDPOINT"],
            "s3_access_key": env["GLINT_S3_ACCESS_KEY"],
            "s3_secret_key": env["GLINT_S3_SECRET_KEY"], "s3_region": env["GLINT_S3_REGION"],
            "s3_bucket": name, "s3_create_bucket": "true",
            "s3_part_size": str(SEGMENT_MIB * CHUNK), "s3_parts_in_flight": str(IN_FLIGHT)}


def client_limits(kind: str, env: dict[str, str], source: pathlib.Path,
                  size: int) -> dict[str, float]:
    """MiB/s of the plain client library's upload and download of ``source``, and the CPU
    seconds per GiB they took (``upload_cpu_s_gib``, ``download_cpu_s_gib``)."""
    name = f"bench-limit-{secrets.token_hex(3)}"
    if kind == "swift":
        return _swift_limits(env, name, source, size)
    return _s3_limits(env, name, source, size)


def _swift_limits(env: dict[str, str], name: str, source: pathlib.Path,
                  size: int) -> dict[str, float]:
    import swiftclient
    from swiftclient.service import SwiftService, SwiftUploadObject

    options = {"auth": env["GLINT_SWIFT_AUTH_URL"], "user": env["GLINT_SWIFT_USER"],
               "key": env["GLINT_SWIFT_KEY"], "auth_version": "1",
               "segment_size": SEGMENT_MIB * CHUNK, "use_slo": True,
               "segment_threads": IN_FLIGHT, "object_uu_threads": 1}
    conn = swiftclient.Connection(authurl=env["GLINT_SWIFT_AUTH_URL"],
                                  user=env["GLINT_SWIFT_USER"], key=env["GLINT_SWIFT_KEY"],
                                  auth_version="1")
    conn.put_container(name)
    with SwiftService(options) as service:
        with _Timed() as upload:
            for result in service.upload(name, [SwiftUploadObject(str(source), "image")]):
                if not result["success"]:
                    raise RuntimeError(f"swiftclient upload: {result.get('error')}")
        with _Timed() as download:
            _, body = conn.get_object(name, "image", resp_chunk_size=CHUNK)
            got = sum(len(chunk) for chunk in body)
        for _ in service.delete(name):
            pass
    if got != size:
        raise RuntimeError(f"swiftclient download: {got} of {size} bytes")
    return _limits(size, upload, download)


def _s3_limits(env: dict[str, str], name: str, source: pathlib.Path,
               size: int) -> dict[str, float]:
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config

    client: Any = boto3.client(
        "s3", endpoint_url=env["GLINT_S3_ENDPOINT"], region_name=env["GLINT_S3_REGION"],
        aws_access_key_id=env["GLINT_S3_ACCESS_KEY"],
        aws_secret_access_key=env["GLINT_S3_SECRET_KEY"],
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      request_checksum_calculation="when_required",
                      response_checksum_validation="when_required"))
    client.create_bucket(Bucket=name)
    transfer = TransferConfig(multipart_threshold=SEGMENT_MIB * CHUNK,
                              multipart_chunksize=SEGMENT_MIB * CHUNK,
                              max_concurrency=IN_FLIGHT)
    with _Timed() as upload:
        client.upload_file(str(source), name, "image", Config=transfer)
    with _Timed() as download:
        body = client.get_object(Bucket=name, Key="image")["Body"]
        got = sum(len(chunk) for chunk in body.iter_chunks(CHUNK))
    client.delete_object(Bucket=name, Key="image")
    client.delete_bucket(Bucket=name)
    if got != size:
        raise RuntimeError(f"boto3 download: {got} of {size} bytes")
    return _limits(size, upload, download)


class _Timed:
    """The wall and CPU seconds (this process's, all threads) of a block."""

    seconds = cpu_s = 0.0

    def __enter__(self) -> _Timed:
        self._start, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.seconds = time.perf_counter() - self._start
        self.cpu_s = time.process_time() - self._cpu


def _limits(size: int, upload: _Timed, download: _Timed) -> dict[str, float]:
    gib = size / 1024**3
    return {"upload": stats.mib_per_s(size, upload.seconds),
            "download": stats.mib_per_s(size, download.seconds),
            "upload_cpu_s_gib": upload.cpu_s / gib, "download_cpu_s_gib": download.cpu_s / gib}


def remove(kind: str, env: dict[str, str], name: str) -> None:
    """Empty and delete glint's container (and its segments container) or bucket."""
    if kind == "swift":
        import swiftclient

        conn = swiftclient.Connection(authurl=env["GLINT_SWIFT_AUTH_URL"],
                                      user=env["GLINT_SWIFT_USER"], key=env["GLINT_SWIFT_KEY"],
                                      auth_version="1")
        for container in (name, f"{name}_segments"):
            try:
                for entry in conn.get_container(container, full_listing=True)[1]:
                    conn.delete_object(container, entry["name"])
                conn.delete_container(container)
            except swiftclient.ClientException:
                continue
        return
    from glint.stores.s3 import S3Store

    store = S3Store(endpoint=env["GLINT_S3_ENDPOINT"], access_key=env["GLINT_S3_ACCESS_KEY"],
                    secret_key=env["GLINT_S3_SECRET_KEY"], bucket=name, create_bucket=True)
    store.remove_temporary_files()
    for key in store.locations():
        store.delete(key)
    store.client.delete_bucket(Bucket=name)
