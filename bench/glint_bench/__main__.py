"""``python -m glint_bench``: one benchmark run (settings: ``BENCH_*``, see config.py)."""

import sys

from glint_bench import run

sys.exit(run.main())
