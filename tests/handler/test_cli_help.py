"""`--help` ends with examples and every exit code the CLI answers with, laid out as written."""

from __future__ import annotations

import pytest

from handler import cli
from handler.cli import EXIT_FAILED, EXIT_IN_PROGRESS, EXIT_OK, EXIT_USAGE, main

COMMANDS = ["run", "history", "status", "verify", "lineage", "send-lineage", "partitions", "demo"]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_lists_examples_of_the_command_and_every_exit_code(
    command: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"] if command else ["--help"])

    text = capsys.readouterr().out
    assert info.value.code == 0
    examples = text.split("\nexamples:\n", 1)[1].split("\nexit codes:\n")[0]
    prog = f"python -m handler {command}" if command else "python -m handler "
    assert examples.count(f"\n  {prog}") + examples.startswith(f"  {prog}") >= 1, examples
    codes = text.split("\nexit codes:\n", 1)[1]
    for code in (EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_IN_PROGRESS, 130, 141, 143):
        assert f" {code} " in f" {codes}", codes


def test_every_exit_code_the_cli_defines_is_in_the_help() -> None:
    defined = {value for name, value in vars(cli).items() if name.startswith("EXIT_")}
    codes = cli.build_parser().format_help().split("exit codes:", 1)[1]

    assert all(f"\n  {code} " in codes for code in defined), codes
