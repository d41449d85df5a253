"""Stores hold image bytes. Found by name in the ``glint.stores`` namespace."""
