"""Imports: the methods of ``POST /v2/images/{id}/import`` and the service that starts them."""
