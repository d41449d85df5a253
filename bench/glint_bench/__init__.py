"""glint's benchmark harness: ``python -m glint_bench`` (``make bench``).

It measures the machine's limits and glint against them in one run, prints a table and writes
``bench/results/latest.json``. See ``BENCHMARKS.md`` for the figures and what bounds them.
"""
