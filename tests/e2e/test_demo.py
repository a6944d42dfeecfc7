"""README command 1: `python -m handler demo` works with nothing but the repo, and with real MovieLens files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

MOVIELENS = REPO.parent / "shared" / "data" / "ml-latest-small"


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [sys.executable, "-m", "handler", "demo", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_demo_lands_the_sample_then_exactly_the_added_and_changed_files() -> None:
    result = run_demo()

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for name in ("links.csv", "movies.csv", "ratings.csv", "tags.csv", "README.txt"):
        assert f"    {name}  (" in out or f"        {name}  (" in out, name
    assert "ingest_date=" in out and "_ingestion/" in out
    assert "Notification received on the topic's queue" in out
    assert "attributes: {'dataset': 'movielens', 'status': 'succeeded'}" in out
    landed_by_second_run = out.split("Landed by run 2:")[1].split("Run summary:")[0].split()
    assert [Path(k).name for k in landed_by_second_run] == ["ratings_late.csv", "tags.csv"]
    verified = out.split("=== Verify")[1].splitlines()[1:3]
    assert [line.split(": ", 1)[1] for line in verified] == ["clean, 5 object(s) checked", "clean, 2 object(s) checked"]
    assert "Demo succeeded" in out


@pytest.mark.skipif(not MOVIELENS.is_dir(), reason="the MovieLens sample is not on this machine")
def test_demo_lands_the_real_movielens_files_byte_for_byte_sized() -> None:
    result = run_demo("--source-dir", str(MOVIELENS))

    assert result.returncode == 0, result.stdout + result.stderr
    for path in MOVIELENS.iterdir():
        assert f"{path.name}  ({path.stat().st_size} bytes)" in result.stdout, path.name
    assert "Demo succeeded" in result.stdout


def test_demo_without_its_extra_says_how_to_install_it() -> None:
    """`pip install .` without `[demo]`: moto cannot be imported. Made so here by a None in sys.modules, which is
    what makes an import fail with ModuleNotFoundError."""
    blocked = "import sys; sys.modules['moto'] = None; from handler.cli import main; sys.exit(main())"
    result = subprocess.run(
        [sys.executable, "-c", blocked, "demo"], cwd=REPO, capture_output=True, text=True, timeout=60
    )

    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    assert result.stderr.splitlines() == [
        "error: the demo needs moto, which this Python cannot import: install the demo extra with "
        "`pip install '.[demo]'` from the repository root, or run `make demo`, which installs everything into ./.venv"
    ]
