"""glint: an image service whose heart is an asynchronous task system."""

__version__ = "0.1.0"
