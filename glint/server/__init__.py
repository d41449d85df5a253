"""Process plumbing: how ``glint serve`` runs the API (uvicorn, its HTTP protocol, the
listening sockets and the API workers' processes) and how ``glint worker`` runs a Celery
worker. Above :mod:`glint.api`, below the CLI: nothing else imports it."""
