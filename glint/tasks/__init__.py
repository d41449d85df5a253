"""Tasks: the API resource, its lifecycle and the runner that drives it."""
