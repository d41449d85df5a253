"""Kept for scripts that import ``ImageData`` from here: it is the contract's.

The database API a script is lent is declared by :class:`glint.scripts.contract.ImageApi`;
glint's implementation is :class:`glint.tasks.script_api.ScriptDbApi`.
"""

from __future__ import annotations

from glint.scripts.contract import ImageData

__all__ = ["ImageData"]
