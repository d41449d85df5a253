"""The image cache's core (glint.cache): fills, verification, LRU eviction, the rebuild."""

from __future__ import annotations

import hashlib
import os
import pathlib
import time

import pytest

from glint.cache.cache import ImageCache
from glint.cache.fill import Expected

DATA = os.urandom(300_000)


def expected(image_id: str = "image-1", data: bytes = DATA) -> Expected:
    return Expected(image_id, len(data), hashlib.md5(data).hexdigest(), "sha512",
                    hashlib.sha512(data).hexdigest())


@pytest.fixture
def cache(tmp_path: pathlib.Path) -> ImageCache:
    return ImageCache(tmp_path / "cache", max_size=1_000_000, stall_time=60)


def chunks(data: bytes = DATA, size: int = 65536) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def fill(cache: ImageCache, want: Expected, data: bytes = DATA) -> bool:
    filling = cache.fill(want)
    assert filling is not None
    assert b"".join(filling.wrap(chunks(data))) == data
    return filling.done


def read(cache: ImageCache, want: Expected) -> bytes | None:
    file = cache.open(want)
    if file is None:
        return None
    with file:
        return file.read()


def test_a_verified_fill_is_served(cache: ImageCache) -> None:
    want = expected()
    assert read(cache, want) is None
    assert fill(cache, want)
    assert read(cache, want) == DATA
    [entry] = cache.entries()
    assert (entry.image_id, entry.size, entry.hits) == ("image-1", len(DATA), 1)
    assert list(cache.incomplete.iterdir()) == []


def weak(algo: str | None) -> Expected:
    """The image's expected bytes with a multihash of ``algo`` (None: md5 alone)."""
    value = hashlib.new(algo, DATA).hexdigest() if algo else None
    return Expected("image-1", len(DATA), hashlib.md5(DATA).hexdigest(), algo, value)


@pytest.mark.parametrize(("want", "field"), [
    (expected(), "hash_value"), (expected(), "size"), (weak(None), "checksum"),
    (weak("sha1"), "checksum"), (weak("sha1"), "hash_value"), (weak("md5"), "checksum")])
def test_a_fill_that_does_not_match_the_image_is_discarded(
        cache: ImageCache, want: Expected, field: str, caplog: pytest.LogCaptureFixture) -> None:
    wrong = Expected(**{**want.__dict__, field: "0" * 32 if field != "size" else len(DATA) + 1})
    assert not fill(cache, wrong)  # the stream itself is whole all the same
    assert read(cache, want) is None
    assert cache.entries() == [] and list(cache.incomplete.iterdir()) == []
    assert "do not match" in caplog.text


@pytest.mark.parametrize(("want", "hashers"), [
    (expected(), ["sha512"]), (weak("sha256"), ["sha256"]), (weak("sha1"), ["md5", "sha1"]),
    (weak("md5"), ["md5"]), (weak(None), ["md5"])])
def test_a_collision_resistant_multihash_verifies_a_fill_without_the_md5(
        cache: ImageCache, want: Expected, hashers: list[str]) -> None:
    """sha512 (the default multihash) proves the bytes alone: no md5 pass over them (1.4 s
    of CPU a GiB); a weak or missing multihash keeps the md5."""
    filling = cache.fill(want)
    assert filling is not None
    assert b"".join(filling.wrap(chunks())) == DATA
    assert filling.done
    assert sorted(h.hasher.name for h in filling._hashers) == hashers


def test_one_fill_at_a_time_per_image(cache: ImageCache) -> None:
    want = expected()
    first = cache.fill(want)
    assert first is not None
    assert cache.fill(want) is None  # a concurrent first download reads from the store
    assert cache.filling(want.image_id)
    stream = first.wrap(chunks())
    next(stream)
    assert read(cache, want) is None  # nothing half-written is served
    assert b"".join(stream)
    assert first.done and read(cache, want) == DATA


def test_a_fill_stopped_midway_leaves_nothing(cache: ImageCache) -> None:
    want = expected()
    filling = cache.fill(want)
    assert filling is not None
    stream = filling.wrap(chunks())
    next(stream), next(stream)
    stream.close()  # the client went away
    assert read(cache, want) is None
    assert cache.entries() == [] and list(cache.incomplete.iterdir()) == []
    assert fill(cache, want)  # the next download fills it


def test_a_stalled_fill_is_abandoned_for_a_new_one(tmp_path: pathlib.Path) -> None:
    cache = ImageCache(tmp_path, max_size=10**6, stall_time=0.05)
    want = expected()
    stalled = cache.fill(want)
    assert stalled is not None
    stalled.write(DATA[:1000])
    time.sleep(0.1)
    assert not cache.filling(want.image_id)
    assert fill(cache, want)
    assert not stalled.commit()  # its name was taken over: it publishes nothing
    assert read(cache, want) == DATA


def test_a_fill_whose_stream_never_started_is_released(cache: ImageCache) -> None:
    import gc

    want = expected()
    filling = cache.fill(want)
    assert filling is not None
    stream = filling.wrap(chunks())  # a client that left before the body
    del filling, stream
    gc.collect()
    assert list(cache.incomplete.iterdir()) == []
    assert fill(cache, want)


def test_a_killed_fill_is_never_served_and_removed_at_start(tmp_path: pathlib.Path) -> None:
    cache = ImageCache(tmp_path, max_size=10**6, stall_time=0.05)
    (cache.incomplete / "image-1").write_bytes(DATA[:1000])  # what a killed process left
    (cache.directory / "image-2").write_bytes(DATA)  # renamed but never indexed
    assert read(cache, expected("image-2")) is None
    time.sleep(0.1)
    restarted = ImageCache(tmp_path, max_size=10**6, stall_time=0.05)
    assert restarted.rebuild() == 2
    assert list(restarted.incomplete.iterdir()) == []
    assert not (restarted.directory / "image-2").exists()


def test_the_index_survives_a_restart(cache: ImageCache) -> None:
    want = expected()
    assert fill(cache, want)
    restarted = ImageCache(cache.directory, max_size=10**6, stall_time=60)
    assert restarted.rebuild() == 0
    assert read(restarted, want) == DATA


def test_a_corrupted_cached_file_is_discarded(cache: ImageCache,
                                              caplog: pytest.LogCaptureFixture) -> None:
    want = expected()
    assert fill(cache, want)
    path = cache.directory / want.image_id
    time.sleep(0.01)
    with open(path, "r+b") as file:  # same size, one byte changed
        file.seek(1000)
        file.write(bytes([DATA[1000] ^ 0xFF]))
    assert read(cache, want) is None
    assert not path.exists() and cache.entries() == []
    assert "changed since it was filled" in caplog.text


def test_a_truncated_cached_file_is_discarded_at_start(cache: ImageCache) -> None:
    want = expected()
    assert fill(cache, want)
    os.truncate(cache.directory / want.image_id, 1000)
    assert cache.rebuild() == 1
    assert read(cache, want) is None


def test_lru_eviction_at_the_size_limit(tmp_path: pathlib.Path) -> None:
    cache = ImageCache(tmp_path, max_size=3 * len(DATA), stall_time=60)
    images = [expected(f"image-{n}") for n in range(4)]
    for want in images[:3]:
        assert fill(cache, want)
        time.sleep(0.01)
    assert read(cache, images[0]) == DATA  # image-1 is now the least recently used
    assert fill(cache, images[3])
    assert sorted(entry.image_id for entry in cache.entries()) == [
        "image-0", "image-2", "image-3"]
    assert not (cache.directory / "image-1").exists()


def test_an_image_larger_than_the_cache_is_not_filled(tmp_path: pathlib.Path) -> None:
    cache = ImageCache(tmp_path, max_size=len(DATA) - 1, stall_time=60)
    assert cache.fill(expected()) is None


def test_the_prefetch_queue(cache: ImageCache) -> None:
    cache.queue("b")
    cache.queue("a")
    assert cache.queued() == ["a", "b"] and cache.is_queued("a")
    assert cache.dequeue("a") and not cache.dequeue("a")
    assert cache.clear_queue() == 1 and cache.queued() == []


def test_delete_and_clear(cache: ImageCache) -> None:
    for name in ("image-1", "image-2"):
        assert fill(cache, expected(name))
    assert cache.delete("image-1") and not cache.delete("image-1")
    assert cache.clear() == 1
    assert cache.entries() == [] and [p.name for p in cache.directory.iterdir()
                                      if p.is_file() and p.name.startswith("image")] == []
