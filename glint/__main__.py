"""``python -m glint`` runs the ``glint`` command."""

from __future__ import annotations

from glint.cli import main

if __name__ == "__main__":
    main(prog_name="glint")
