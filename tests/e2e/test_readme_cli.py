"""README followed by a new user: two set-up commands, then the CLI run the way README says, from the repository
root with the Python the Makefile installed everything into."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO
from tests.infra.shell_blocks import commands

VENV_PYTHON = (".venv/bin/python", "-m", "handler")


def readme() -> str:
    return (REPO / "README.md").read_text(encoding="utf-8")


def test_readme_opens_with_exactly_two_set_up_commands() -> None:
    set_up = readme().split("## Set-up: two commands", 1)[1].split("\n## ", 1)[0]

    assert [command.argv for command in commands(set_up)] == [("make", "demo"), ("make", "test")]


def test_the_python_readme_runs_the_cli_with_is_the_one_make_installs_into() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")

    venv = re.search(r"^VENV \?= (\S+)$", makefile, re.M)
    python = re.search(r"^PY := (\S+)$", makefile, re.M)
    assert venv and python, "the Makefile no longer names its virtual environment as this test reads it"
    assert python.group(1).replace("$(VENV)", venv.group(1)) == VENV_PYTHON[0]


def test_every_cli_command_readme_shows_after_set_up_works_from_the_repository_root() -> None:
    documented = [c for c in commands(readme()) if c.argv[: len(VENV_PYTHON)] == VENV_PYTHON]
    assert documented, "README no longer says how to run the CLI after `make demo`"
    # The Makefile's environment when this checkout has one (`make test` made it), else the Python running the tests.
    python = str(REPO / VENV_PYTHON[0]) if (REPO / VENV_PYTHON[0]).exists() else sys.executable

    for command in documented:
        done = subprocess.run(
            [python, *command.argv[1:]], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
        )

        assert done.returncode == 0, f"{command}\n{done.stderr}"
        assert done.stdout.startswith("usage: python -m handler"), f"{command}\n{done.stdout}"


def test_the_commands_section_points_at_the_python_it_runs() -> None:
    section = readme().split("\n## Commands\n", 1)[1]

    assert section.index(" ".join(VENV_PYTHON)) < section.index("python -m handler run --config"), (
        "the synopsis comes before README says which python runs it"
    )
