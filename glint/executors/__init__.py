"""Executors decide where a task runs. Found by name in the ``glint.executors`` namespace."""
