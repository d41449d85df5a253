"""glint's test kit gives every test here the ``script_harness`` fixture."""

pytest_plugins = ["glint.testing"]
