"""The image cache: a node-local copy of image bytes in front of remote stores.

:mod:`glint.cache.index` is the cache's record of what it holds (SQLite, in the cache
directory), :mod:`glint.cache.fill` writes one image into the cache while its bytes pass by,
and :mod:`glint.cache.cache` ties them together: look-ups, fills, LRU eviction, the prefetch
queue and the rebuild at start. docs/operations.md ("The image cache") is the operator's view.
"""
