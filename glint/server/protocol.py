"""The HTTP protocol ``glint serve`` runs: uvicorn's httptools protocol, with glint's additions.

Header limits (:mod:`glint.server.header_limits`) come first, so a refused request reaches
nothing else; then zero-copy file sends and TCP_NODELAY (:mod:`glint.server.sendfile`).
"""

from __future__ import annotations

from glint.server.header_limits import HeaderLimitsProtocol
from glint.server.sendfile import SendfileProtocol


class GlintProtocol(HeaderLimitsProtocol, SendfileProtocol):
    """Serve with it: ``uvicorn.Config(app, http=GlintProtocol)``."""
