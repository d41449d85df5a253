"""The data path: copy a stream of image bytes into a store writer, hashing as it goes.

One pass over the data does everything: the md5 ``checksum``, the ``os_hash_value`` multihash
and the store write. Each hash runs in its own thread, fed through a small bounded queue, so
they overlap each other and the reading and writing of the next chunk (hashlib and ``os.write``
release the GIL on large buffers); the store write is made by the thread that reads, while the
hashes work: it costs a fraction of the slower hash (0.3-0.5 ms of CPU per MiB against 1.4), and
a thread and a queue of buffers less per copy is memory that 8 imports at once add up
(BENCHMARKS.md, issue 18). At most ``QUEUE_DEPTH`` chunks wait in each queue, so memory stays
flat whatever the image size.

The caller owns the writer: it commits on success and aborts on failure. ``copy`` returns only
once every thread it started has stopped, so aborting right after is safe.

A copy allocates and frees a buffer of about a MiB per chunk, from several threads. glibc's
malloc keeps what is freed for reuse, in one arena per thread, and gives little of it back:
after each round of 8 concurrent imports the server's RSS stood 40-60 MiB higher than after
the one before. So once a copy ends it asks malloc to return its free pages to the system
(``malloc_trim``, a millisecond or two once per copy): the RSS then falls back after a round
(BENCHMARKS.md, issue 18).

Chunks may be views of buffers lent by a :class:`glint.buffers.Pool` (an import's reader fills
a few buffers over and over rather than allocating one per chunk): ``copy`` gives each back
once every stage has consumed it, and only then may the reader fill it again.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import functools
import hashlib
import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from glint import buffers, errors

BATCH_SIZE = 1024 * 1024  # smaller chunks are joined up to this size before they are handed on
QUEUE_DEPTH = 1
# Free batch buffers a copy keeps: as many as can be out at once (one being filled, written and
# fed, QUEUE_DEPTH queued and one being consumed by the slowest hash).
POOL_KEEP = QUEUE_DEPTH + 2
_POLL = 0.1  # seconds a blocked hand-off waits before it looks for a failed stage
_END = object()


class Writer(Protocol):
    """Where ``copy`` puts the bytes (a store's writer, say): only ``write`` is called."""

    def write(self, data: bytes | memoryview) -> None:
        """Take ``data``; a view may be of a buffer refilled once this returns (glint.buffers):
        copy whatever is kept of it (``bytes(view)``)."""
        ...


@dataclasses.dataclass(frozen=True)
class Digest:
    """What a copy produced: the byte count and both hashes, as hex."""

    size: int
    checksum: str
    hash_algo: str
    hash_value: str


def copy(chunks: Iterable[bytes], writer: Writer, *, size_cap: int, hash_algo: str,
         expected_size: int | None = None, progress: Callable[[int], None] | None = None,
         should_cancel: Callable[[], bool] | None = None,
         meter: Callable[[int], None] | None = None) -> Digest:
    """Copy ``chunks`` into ``writer``, hashing them, in one pass; return the digest.

    Raises :class:`glint.errors.TooLarge` as soon as more than ``size_cap`` bytes arrive (the rest
    is not read), :class:`glint.errors.BadRequest` when ``expected_size`` is given and the data
    turns out to be another size, :class:`glint.errors.ScriptError` when ``should_cancel()``
    becomes true, and whatever a stage (the writer, say) or the ``chunks`` iterable raised.
    ``progress`` gets the number of bytes read so far after each batch; ``meter`` (a metric,
    :func:`glint.metrics.meter`) the size of each batch, as it is handed to the writer.
    """
    md5 = hashlib.md5(usedforsecurity=False)
    multihash = md5 if hash_algo == "md5" else hashlib.new(hash_algo)
    hashers = [md5] if multihash is md5 else [md5, multihash]
    pipeline = _Pipeline([h.update for h in hashers])
    limit = _Limit(size_cap, expected_size)
    try:
        for batch in _batches(chunks, limit):
            if should_cancel is not None and should_cancel():
                raise errors.ScriptError("Data copy cancelled")
            shared = pipeline.feed(batch, users=1)
            writer.write(batch)
            if shared is not None:
                shared.consumed()
            if meter is not None:
                meter(len(batch))
            if progress is not None:
                progress(limit.size)
        limit.check_complete()
        pipeline.finish()
    finally:
        pipeline.stop()
        release_free_memory()
    return Digest(size=limit.size, checksum=md5.hexdigest(), hash_algo=hash_algo,
                  hash_value=multihash.hexdigest())


def release_free_memory() -> None:
    """Hand the heap's free pages back to the system (glibc's ``malloc_trim``; elsewhere
    nothing)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): no such call
        return None
    return trim


class _Limit:
    """Counts bytes and enforces the size cap and the announced size."""

    def __init__(self, cap: int, expected: int | None) -> None:
        self.cap = cap
        self.expected = expected
        self.size = 0

    def add(self, count: int) -> None:
        self.size += count
        if self.size > self.cap:
            raise errors.TooLarge(f"Image data exceeds the size cap of {self.cap} bytes")
        if self.expected is not None and self.size > self.expected:
            raise errors.BadRequest(self._mismatch("at least "))

    def check_complete(self) -> None:
        if self.expected is not None and self.size != self.expected:
            raise errors.BadRequest(self._mismatch(""))

    def _mismatch(self, qualifier: str) -> str:
        return (f"Image data size mismatch: expected {self.expected} bytes, "
                f"got {qualifier}{self.size}")


def _batches(chunks: Iterable[bytes], limit: _Limit) -> Iterable[bytes]:
    """Small chunks copied into batches of BATCH_SIZE (fewer hand-offs); big ones pass on.

    A batch is a buffer of a small per-copy pool, lent down the pipeline and refilled once it
    came back: no new MiB per batch (a ``b"".join`` each time held 8 MiB among 8 imports and
    left the allocator's arenas fragmented). A lent chunk copied into a batch goes back to its
    own pool at once.
    """
    pool = buffers.Pool(BATCH_SIZE, POOL_KEEP)
    batch: buffers.Buffer | None = None
    filled = 0
    for chunk in chunks:
        if not chunk:
            continue
        limit.add(len(chunk))
        if batch is None and len(chunk) >= BATCH_SIZE:
            yield chunk
            continue
        rest = memoryview(chunk)
        while rest:
            if batch is None:
                batch, filled = pool.take(), 0
            count = min(len(rest), BATCH_SIZE - filled)
            batch[filled:filled + count] = rest[:count]
            filled, rest = filled + count, rest[count:]
            if filled == BATCH_SIZE:
                yield buffers.view(batch, filled)  # type: ignore[misc]  # bytes-like
                batch = None
        buffers.give_back(chunk)
    if batch is not None:
        yield buffers.view(batch, filled)  # type: ignore[misc]  # bytes-like


class _Pipeline:
    """One thread per consumer, each fed the same chunks through its own bounded queue.

    The first error in any stage halts every stage; ``feed`` and ``finish`` then re-raise it.
    """

    def __init__(self, consumers: list[Callable[[bytes], Any]]) -> None:
        self._halt = threading.Event()
        self._stages = [_Stage(consume, self._halt) for consume in consumers]
        for stage in self._stages:
            stage.start()

    def feed(self, chunk: bytes, users: int = 0) -> _Shared | None:
        """Queue ``chunk`` for every stage; a lent one goes back once the last has consumed it.

        ``users`` more than the stages use the chunk (the caller): then a lent chunk's buffer
        waits for them too, each saying so with ``consumed()`` on what this returns."""
        if buffers.lent(chunk) is None:
            if not isinstance(chunk, bytes):  # a reader's own buffer, refilled once we return
                chunk = bytes(chunk)
            for stage in self._stages:
                self._put(stage, chunk)
            return None
        shared = _Shared(chunk, len(self._stages) + users)
        for stage in self._stages:
            self._put(stage, shared)
        return shared

    def finish(self) -> None:
        """Wait for every stage to consume everything fed so far; raise a stage's error."""
        for stage in self._stages:
            self._put(stage, _END)
        for stage in self._stages:
            stage.join()
        self._raise_error()

    def stop(self) -> None:
        """Halt every stage and wait for its thread to end (idempotent, never raises)."""
        self._halt.set()
        for stage in self._stages:
            with contextlib.suppress(queue.Full):  # a busy stage sees the halt at its next get
                stage.queue.put_nowait(_END)
        for stage in self._stages:
            stage.join()

    def _put(self, stage: _Stage, item: object) -> None:
        while True:
            self._raise_error()
            try:
                stage.queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def _raise_error(self) -> None:
        if not self._halt.is_set():
            return
        for stage in self._stages:
            if stage.error is not None:
                raise stage.error
        raise errors.ScriptError("Data copy stopped")  # pragma: no cover - halt implies an error


class _Shared:
    """A lent chunk on its way through several stages: the last to finish gives it back.

    A stage that fails or is halted never says it finished, so the buffer of a chunk still
    queued when a copy fails is not reused: it is freed with the queue."""

    def __init__(self, chunk: bytes, users: int) -> None:
        self.chunk = chunk
        self._users = users
        self._lock = threading.Lock()

    def consumed(self) -> None:
        with self._lock:
            self._users -= 1
            last = self._users == 0
        if last:
            buffers.give_back(self.chunk)


class _Stage(threading.Thread):
    def __init__(self, consume: Callable[[bytes], Any], halt: threading.Event) -> None:
        super().__init__(name=f"glint-datapath-{getattr(consume, '__qualname__', 'stage')}",
                         daemon=True)
        self.queue: queue.Queue[object] = queue.Queue(QUEUE_DEPTH)
        self.error: BaseException | None = None
        self._consume = consume
        self._halt = halt

    def run(self) -> None:
        try:
            while True:
                item = self.queue.get()
                if item is _END or self._halt.is_set():
                    return
                if isinstance(item, _Shared):
                    self._consume(item.chunk)
                    item.consumed()
                    continue
                assert isinstance(item, bytes)
                self._consume(item)
        except BaseException as exc:  # handed to the feeding thread, which re-raises it
            self.error = exc
            self._halt.set()


# copy's stages, for a caller that passes each chunk on itself (the image cache's fill tees a
# download's chunks through them: glint.cache.fill).
Pipeline = _Pipeline
