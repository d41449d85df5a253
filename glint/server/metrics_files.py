"""prometheus-client's multiprocess mode for glint's processes (the API workers of
``glint serve --workers N``, the children of ``glint worker --pool prefork``).

Imports nothing that imports prometheus-client: it picks its mode when first imported, which
must come after :func:`directory` set the variable.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

# prometheus-client's multiprocess directory (glint.metrics.MULTIPROC_ENV), not imported from
# there for the reason above.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def directory() -> Iterator[None]:
    """Each process started while this is set writes its metrics to files in a directory of
    this one's, which any of them reads to answer ``/metrics`` for all. The directory goes when
    this process leaves, so the next ``glint serve`` starts its counters from zero, as one
    process does."""
    path = tempfile.mkdtemp(prefix="glint-metrics-")
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = path
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)
