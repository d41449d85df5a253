"""``glint cache``: this node's image cache for operators (:mod:`glint.cache`).

The commands act on the cache directory the settings name (``image_cache_dir``) and, for
``queue`` and ``prune``, on the database: run them on the node whose cache they are about,
with its settings. They need no running server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from glint import app
    from glint.cache.cache import ImageCache


@click.group()
def cache() -> None:
    """List, queue, delete, clear and prune this node's image cache."""


@cache.command("list")
def cache_list() -> None:
    """The cached images (least recently used first) and those queued for prefetch."""
    from glint import cli

    found = _cache()
    entries = found.entries()
    rows = [(e.image_id, str(e.size), str(e.hits), _time(e.last_accessed),
             _time(e.last_modified)) for e in entries]
    click.echo(cli._table([("IMAGE", "SIZE", "HITS", "LAST ACCESSED", "CACHED"), *rows])
               if rows else "no cached images")
    queued = found.queued()
    click.echo(f"queued: {', '.join(queued)}" if queued else "nothing queued")


@cache.command("queue")
@click.argument("image_id")
def cache_queue(image_id: str) -> None:
    """Queue an active image for prefetch into this node's cache. The cache_prefetch task runs
    on the executor its type routes to: in-process (thread) in this command, which waits."""
    from glint import cli
    from glint.cache import prefetch
    from glint.context import RequestContext

    with _glint() as glint, cli._refusals():
        assert glint.cache is not None
        task = prefetch.queue(glint.cache, glint.images, glint.tasks, RequestContext.admin(),
                              image_id)
        if task is None:
            click.echo(f"image {image_id}: cached or queued already")
            return
        if not getattr(glint.router.executor_for(task.type), "remote", False):
            glint.router.shutdown(wait=True)
        ended = glint.tasks.row(task.id)
        click.echo(f"image {image_id}: task {task.id} {ended.status}"
                   + (f" ({ended.message})" if ended.message else ""))


@cache.command("delete")
@click.argument("image_id")
def cache_delete(image_id: str) -> None:
    """Remove an image from this node's cache and its queue."""
    found = _cache()
    cached, queued = found.delete(image_id), found.dequeue(image_id)
    click.echo(f"image {image_id}: " + ("removed" if cached or queued else "not cached"))


@cache.command("clear")
@click.option("--target", type=click.Choice(["cache", "queue", "both"]), default="both",
              show_default=True, help="What to empty.")
def cache_clear(target: str) -> None:
    """Empty this node's cache, its prefetch queue, or both."""
    from glint import cli

    found = _cache()
    cached = found.clear() if target in ("cache", "both") else 0
    queued = found.clear_queue() if target in ("queue", "both") else 0
    click.echo(f"removed {cli._count(cached, 'cached image')}, "
               f"{cli._count(queued, 'queued image')}")


@cache.command("prune")
def cache_prune() -> None:
    """Remove cached images that were deleted or are no longer active, then evict the least
    recently used down to image_cache_max_size (what glint serve does every reaper_interval)."""
    from glint import cli
    from glint.cache import pruner

    with _glint() as glint:
        assert glint.cache is not None
        removed = pruner.prune(glint.cache, glint.db)
    click.echo(f"removed {cli._count(removed, 'cached image')}")


def _cache() -> ImageCache:
    from glint import cli
    from glint.cache.cache import ImageCache

    found = ImageCache.from_settings(cli._settings())
    if found is None:
        raise click.ClickException("the image cache is off (image_cache_enabled)")
    return found


@contextmanager
def _glint() -> Iterator[app.Glint]:
    from glint import cli

    _cache()  # off: say so before building anything
    with cli._operator_glint(executor=None) as glint:
        yield glint


def _time(stamp: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
