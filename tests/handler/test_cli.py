"""CLI argument handling that needs no S3: overrides go through the config's own validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from handler.cli import EXIT_USAGE, main
from tests.conftest import write_config


@pytest.mark.parametrize("value", ["5000", "1025"])
def test_concurrency_override_outside_the_config_range_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    config = write_config(tmp_path / "config.json", "some-source", "some-raw")

    code = main(["run", "--config", str(config), "--dataset", "movielens", "--concurrency", value])

    assert code == EXIT_USAGE
    assert f"concurrency: must be between 1 and 1024, got {value}" in capsys.readouterr().err
