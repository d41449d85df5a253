"""Buffers a reader fills again and again, lent down the data path as memoryviews.

Reading an image into a new ``bytes`` per chunk allocates and frees a MiB at a time from
several threads; glibc keeps what is freed in per-thread arenas, and 8 concurrent imports held
the server's RSS some 100 MiB above idle (BENCHMARKS.md, issue 18). A :class:`Pool` instead
keeps a few fixed buffers per copy: the reader (:mod:`glint.scripts.fetch`) fills one, hands on
a view of it (:func:`view`), and takes it again only once it came back through
:func:`give_back`.

The rule that makes reuse safe: a lent buffer is given back only by the one who knows every
user of the view is done with it, :func:`glint.datapath.copy` (after the last of its stages
consumed it). Anyone else just drops the view: the buffer is then never reused, and is freed
with its last view. Whoever keeps bytes of a lent view past the call it was given in must copy
them (``bytes(view)``): the store writers, the gate's inspection and oslo's capture regions do.
"""

from __future__ import annotations

import mmap
import threading
import weakref


class Buffer(mmap.mmap):
    """A pool's buffer: it knows its pool, and whether it is out on loan.

    Its memory is a mapping of its own, not malloc's: it goes back to the system the moment the
    buffer is freed, instead of staying in a thread's arena (where 8 imports' worth of MiB
    buffers kept the RSS up between rounds). Made once per copy, so the page faults of fresh
    pages are paid once, not per chunk.
    """

    __slots__ = ("lent", "pool")
    lent: bool
    # Weak: a pool holds its free buffers, and a cycle would leave them (mapped) until the
    # cyclic garbage collector came by, not gone when the copy that made them ends.
    pool: weakref.ref[Pool]

    def __new__(cls, size: int, pool: Pool) -> Buffer:
        buffer = super().__new__(cls, -1, size, flags=mmap.MAP_PRIVATE)  # anonymous, unshared
        buffer.pool = weakref.ref(pool)
        buffer.lent = False
        return buffer


class Pool:
    """Up to ``keep`` free buffers of ``size`` bytes; more are made when all are out."""

    def __init__(self, size: int, keep: int) -> None:
        self.size = size
        self.keep = keep
        self._free: list[Buffer] = []
        self._lock = threading.Lock()

    def take(self) -> Buffer:
        """A buffer no one else uses: a given-back one, else a new one."""
        with self._lock:
            buffer = self._free.pop() if self._free else Buffer(self.size, self)
            buffer.lent = True
        return buffer

    def release(self, buffer: Buffer) -> None:
        """Take ``buffer`` back for reuse (dropped when ``keep`` are already free)."""
        with self._lock:
            if not buffer.lent:
                raise RuntimeError("a pool buffer was given back twice")
            buffer.lent = False
            if len(self._free) < self.keep:
                self._free.append(buffer)

    @property
    def free(self) -> int:
        return len(self._free)


def view(buffer: Buffer, length: int) -> memoryview:
    """The first ``length`` bytes of ``buffer``, to hand on."""
    return memoryview(buffer)[:length]


def lent(chunk: object) -> Buffer | None:
    """The pool buffer ``chunk`` is a view of, while it is out on loan (else None)."""
    if isinstance(chunk, memoryview):
        owner = chunk.obj
        if isinstance(owner, Buffer) and owner.lent:
            return owner
    return None


def give_back(chunk: object) -> None:
    """Return the buffer behind ``chunk`` to its pool, if it is a lent one."""
    buffer = lent(chunk)
    pool = buffer.pool() if buffer is not None else None
    if buffer is not None and pool is not None:  # else its copy is over: it is dropped
        pool.release(buffer)
