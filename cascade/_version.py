"""The package version, written once: pyproject.toml reads it, the package and its telemetry export it."""

__version__ = "0.1.0"
