"""The shell commands a Markdown document tells its reader to run, in the order it gives them.

Read from the fenced `sh` blocks only, split the way a POSIX shell splits them (quotes, `\\` line
continuations, `#` comments, `&&`/`;`/`|` lists), with every `$(...)` substitution as a command of its own,
run before the command it is part of. A line of `pulumi` commands with a glob character outside quotes
(`notificationEmails[0]`) is refused: zsh, the macOS default shell, stops at it with "no matches found".
"""

from __future__ import annotations

import re
import shlex
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?:sh|bash|shell)[ \t]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)
_NOT_WALKED = re.compile(r"<!-- not walked: [^>]+ -->[ \t]*\n(?:[ \t]*\n)?\Z")
"""A block right after this comment is for a stack the walk does not build (one with a KMS key, say); the
comment says which, and the test that covers it."""
_SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")
_OPERATORS = {"&&", "||", ";", "|", "&"}
_GLOBS = "*?["


@dataclass(frozen=True)
class Command:
    """One simple command as the shell would run it, and where the document gives it."""

    argv: tuple[str, ...]
    line: int
    text: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.text.strip()}"


class ShellTextError(ValueError):
    """A command in the document would not run as written in a POSIX shell (or zsh)."""


def commands(markdown: str) -> Iterator[Command]:
    """Every command of the document's sh blocks, substitutions first."""
    for block in _FENCE.finditer(markdown):
        if _NOT_WALKED.search(markdown, 0, block.start()):
            continue
        first_line = markdown.count("\n", 0, block.start("body")) + 1
        body = textwrap.dedent(block.group("body"))
        for offset, text in _logical_lines(body):
            yield from _line_commands(text, first_line + offset)


def _logical_lines(body: str) -> Iterator[tuple[int, str]]:
    """(line offset, text) with backslash-continued lines joined."""
    pending: list[str] = []
    start = 0
    for number, line in enumerate(body.splitlines()):
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        yield start, " ".join(pending)
        pending = []
    if pending:
        yield start, " ".join(pending)


def _line_commands(text: str, line: int) -> Iterator[Command]:
    found = list(_split(text, line))
    globs = unquoted_globs(text)
    if globs and any(command.argv[0] == "pulumi" for command in found):
        raise ShellTextError(
            f"line {line}: {text.strip()!r} has {' '.join(globs)!r} outside quotes: the shell expands it as a "
            "file pattern (zsh refuses it when nothing matches); quote the argument"
        )
    yield from found


def _split(text: str, line: int) -> Iterator[Command]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError as err:
        raise ShellTextError(f"line {line}: {text.strip()!r}: {err}") from err
    argv: list[str] = []
    for token in [*tokens, ";"]:
        if token in _OPERATORS:
            if argv:
                yield Command(tuple(argv), line, text)
            argv = []
            continue
        for inner in _SUBSTITUTION.findall(token):
            yield from _line_commands(inner, line)
        argv.append(token)


def unquoted_globs(text: str) -> list[str]:
    """The glob characters of `text` outside quotes and comments."""
    found: list[str] = []
    quote = ""
    escaped = False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif quote:
            if char == quote:
                quote = ""
            elif char == "\\" and quote == '"':
                escaped = True
        elif char in "'\"":
            quote = char
        elif char == "\\":
            escaped = True
        elif char == "#" and (i == 0 or text[i - 1].isspace()):
            break
        elif char in _GLOBS:
            found.append(char)
    return found


def without_section(markdown: str, heading: str) -> str:
    """The document without the section under `heading` (a whole `## ...` line), up to the next heading of its level."""
    level = heading.split(" ", 1)[0]
    start = markdown.index(heading + "\n")
    following = re.compile(rf"^#{{1,{len(level)}}} ", re.M)
    end = following.search(markdown, start + len(heading))
    return markdown[:start] + (markdown[end.start() :] if end else "")
