"""What 8 concurrent imports' data path holds, in one process: fetch → gate → datapath.copy.

Serve a file on loopback first (``python -m http.server PORT --bind 127.0.0.1`` in its
directory), then ``.venv/bin/python bench/datapath_memory.py PORT NAME [trace]``: process RSS
before, peak and after 8 copies of it into a writer that drops the bytes, and with ``trace``
the top holders SNAPSHOT_AFTER seconds in (tracemalloc, 5 frames; buffers that are mappings do not show).
Used for BENCHMARKS.md, issue 18 item 2; loopback only.
"""

from __future__ import annotations

import linecache
import pathlib
import sys
import threading
import time
import tracemalloc

from glint import datapath, gate, settings, urlfilter
from glint.scripts import fetch

STREAMS = 8
SNAPSHOT_AFTER = 1.5  # seconds into the copies (3 s on the loaded host of BENCHMARKS.md)


class _Drop:
    def write(self, data: bytes | memoryview) -> None:
        pass


def _one(url: str, config: settings.Settings, image_gate: gate.ImageGate) -> None:
    with fetch.client(config) as http, fetch.open_url(
            http, url, urlfilter.UrlFilter.from_settings(config), 0) as response:
        length = fetch.content_length(response)
        chunks = image_gate.stream(fetch._raw_body(response, length, 30), "raw", "bare")
        datapath.copy(chunks, _Drop(), size_cap=1 << 40, hash_algo="sha512")


def _rss_mib() -> float:
    return int(pathlib.Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


def main(port: int, name: str, trace: bool, path: str = "img64.raw") -> None:
    config = settings.Settings(import_allowed_hosts=("127.0.0.1",))
    image_gate = gate.ImageGate(vmdk_allowed_types=("streamOptimized", "monolithicSparse"),
                                size_cap=1 << 40, work_dir=pathlib.Path("/tmp"))
    url = f"http://127.0.0.1:{port}/{path}"
    if trace:
        tracemalloc.start(5)
    before, peak, snapshot = _rss_mib(), 0.0, None
    threads = [threading.Thread(target=_one, args=(url, config, image_gate))
               for _ in range(STREAMS)]
    for thread in threads:
        thread.start()
    started = time.time()
    while any(thread.is_alive() for thread in threads):
        time.sleep(0.05)
        peak = max(peak, _rss_mib())
        if trace and snapshot is None and time.time() - started > SNAPSHOT_AFTER:
            snapshot = tracemalloc.take_snapshot()
    print(f"{name} RSS before {before:.0f} peak {peak:.0f} after {_rss_mib():.0f} MiB")
    if snapshot is not None:
        stats = snapshot.statistics("traceback")
        print(f"  traced total {sum(s.size for s in stats) / 2**20:.1f} MiB")
        for stat in stats[:6]:
            frames = [f for f in stat.traceback if "glint" in f.filename
                      or "oslo" in f.filename] or list(stat.traceback)
            frame = frames[-1]
            print(f"  {stat.size / 2**20:6.1f} MiB {stat.count:5d} blocks  "
                  f"{frame.filename}:{frame.lineno} "
                  f"{linecache.getline(frame.filename, frame.lineno).strip()[:70]}")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3:4] == ["trace"])
