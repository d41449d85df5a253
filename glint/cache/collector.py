"""The image cache's gauges, read from its index when ``/metrics`` is scraped."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import registry
from prometheus_client.core import GaugeMetricFamily

from glint import metrics
from glint.cache.cache import ImageCache


class CacheCollector(registry.Collector):
    def __init__(self, cache: ImageCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[GaugeMetricFamily]:
        entries = self.cache.entries()
        values = {"glint_cache_images": len(entries),
                  "glint_cache_bytes": sum(entry.size for entry in entries),
                  "glint_cache_max_bytes": self.cache.max_size,
                  "glint_cache_queued": len(self.cache.queued())}
        for name, value in values.items():
            yield GaugeMetricFamily(name, metrics.CACHE_FAMILIES[name], value=value)
