"""`pip install .` as a user runs it: a wheel of the `handler` package alone, whose `ingest` console script is the
same CLI as `python -m handler`. Built from a copy of the package files, so the checkout is left as it was."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import handler

REPO = Path(__file__).resolve().parents[2]


def _pip(*args: str, cwd: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_pip_install_gives_an_ingest_script_of_the_handler_package_alone(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "handler", source / "handler", ignore=shutil.ignore_patterns("__pycache__"))
    # No build isolation: the pinned setuptools of requirements.txt builds it, with no index needed.
    _pip("wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source), cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("*.whl")

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(info).decode()
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    packaged = {n for n in names if ".dist-info/" not in n}
    modules = {f"handler/{p.relative_to(REPO / 'handler').as_posix()}" for p in (REPO / "handler").rglob("*.py")}
    assert packaged == modules  # the package, whole, and nothing else (no tests, infra, bench)
    assert f"Version: {handler.__version__}" in metadata
    assert "Requires-Dist: botocore>=1.40.61" in metadata
    assert "ingest = handler.cli:main" in entry_points

    site = tmp_path / "site"
    _pip("install", "-q", "--no-deps", "--target", str(site), str(wheel), cwd=tmp_path)
    script = site / "bin" / "ingest"
    env = dict(os.environ, PYTHONPATH=str(site))
    shown = subprocess.run([str(script), "--version"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"ingest {handler.__version__} (boto3 ")
    helped = subprocess.run([str(script), "run", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: ingest run "), helped.stderr
    refused = subprocess.run([str(script), "run"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "usage: ingest run" in refused.stderr
