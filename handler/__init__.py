"""The runtime: lands a dataset's new and changed files from S3 into the raw bucket (README.md, docs/)."""

__version__ = "0.10.0"
"""One version for the package, its `ingest` console script (pyproject.toml reads it) and `--version`."""
