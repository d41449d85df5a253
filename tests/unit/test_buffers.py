"""The pool of buffers an import's reader reuses (glint.buffers)."""

from __future__ import annotations

import gc
import weakref

import pytest

from glint import buffers


def test_a_given_back_buffer_is_taken_again() -> None:
    pool = buffers.Pool(16, keep=2)
    first = pool.take()
    buffers.give_back(buffers.view(first, 4))
    assert pool.take() is first


def test_a_buffer_out_on_loan_is_never_taken_again() -> None:
    pool = buffers.Pool(16, keep=2)
    lent = pool.take()
    assert pool.take() is not lent


def test_the_pool_keeps_at_most_keep_free_buffers() -> None:
    pool = buffers.Pool(16, keep=2)
    taken = [pool.take() for _ in range(5)]
    for buffer in taken:
        buffers.give_back(buffers.view(buffer, 16))
    assert pool.free == 2


def test_a_buffer_given_back_twice_is_an_error() -> None:
    pool = buffers.Pool(16, keep=2)
    buffer = pool.take()
    buffers.give_back(buffers.view(buffer, 16))
    with pytest.raises(RuntimeError, match="twice"):
        pool.release(buffer)


def test_only_views_of_lent_buffers_are_given_back() -> None:
    pool = buffers.Pool(16, keep=2)
    buffer = pool.take()
    assert buffers.lent(buffers.view(buffer, 8)[2:]) is buffer
    assert buffers.lent(b"bytes") is None
    assert buffers.lent(memoryview(bytearray(16))) is None
    buffers.give_back(b"bytes")  # nothing to give back
    buffers.give_back(buffers.view(buffer, 8))
    assert buffers.lent(buffers.view(buffer, 8)) is None  # back in the pool


def test_a_pool_and_its_buffers_go_as_soon_as_its_owner_drops_it() -> None:
    # No reference cycle: the buffers' memory goes back when the copy ends, not at the next
    # run of the cyclic garbage collector.
    gc.disable()
    try:
        pool = buffers.Pool(16, keep=2)
        out = pool.take()
        buffers.give_back(buffers.view(pool.take(), 16))
        gone = weakref.ref(pool)
        del pool
        assert gone() is None
        buffers.give_back(buffers.view(out, 16))  # its pool is gone: dropped, no error
    finally:
        gc.enable()
