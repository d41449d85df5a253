"""The HTTP API: Glance v2 on the wire, built with Starlette. Start at :mod:`glint.api.app`."""
