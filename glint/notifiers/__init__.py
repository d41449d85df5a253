"""Notifiers emit events. Found by name in the ``glint.notifiers`` namespace."""
