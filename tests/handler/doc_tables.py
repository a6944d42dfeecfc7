"""Reading a markdown table out of a document, so a test can hold the docs to the table the code renders."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def table_lines(text: str, header: str) -> list[str]:
    """The lines of the table whose header row is `header`, down to the first line that is not a table row."""
    lines = text.splitlines()
    assert header in lines, f"no table with the header {header!r}"
    start = lines.index(header)
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def table_rows(text: str, header: str) -> list[list[str]]:
    """The cells of each body row (header and `---` row left out); cells must not contain ` | `."""
    return [line[2:-2].split(" | ") for line in table_lines(text, header)[2:]]
