"""Scripts: what a task does. See :mod:`glint.scripts.contract` for the contract."""
