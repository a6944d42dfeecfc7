"""Settings tables: the rows that the process config's dataset fields and the stack config's keys are made of.

A setting's name, type, default, range and doc are written once, in its `Setting`; the dataclass defaults, the
checks and the documentation tables (`markdown_table`, which tests hold the README and docs/deploy.md to) all
read the same row. The runtime's `DATASET_FIELDS` (handler/config.py) and the stack's `STACK_SETTINGS`
(infra/stack_config.py) share this machinery, so the Lambda and the stack check and document alike.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB
DAY = 24 * 3600


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""The default of a setting that has none: a document must give it."""


@dataclass(frozen=True)
class Setting:
    """One row of a settings table: the one place a setting's name, type, default, range and doc are written.

    The process config's `DATASET_FIELDS` and the stack config's table in `infra/stack_config.py` are made of
    these, so the dataclass defaults, the checks and the documentation tables all read the same row.
    """

    name: str
    """As a document spells it: `concurrency`, `source.bucket`, `lambdaMemoryMb`."""
    type: type
    """The value's JSON type: int, float, str, bool, list or dict."""
    default: Any
    """REQUIRED when a document must give it; None when leaving it out means "none"."""
    doc: str
    low: int | float | None = None
    high: int | float | None = None
    unit: str = ""
    """"bytes" or "seconds": how the documentation writes its numbers (256 MiB, 7 days)."""
    attribute: str = ""
    """Dotted path of the value on the config object, when it is not the name (`function.memory_mb`)."""
    check: Callable[[Any], list[str]] | None = None
    """What a value of the right type and range must also be; returns the problems (empty: none)."""
    choices: tuple[Any, ...] = ()
    """The only values allowed, when there is such a list."""
    decode: Callable[[Any], Any] | None = None
    """How a reader of text (the Pulumi CLI's strings) turns a value of the right type into the stored one."""
    held: Callable[[Any], Any] | None = None
    """How the config object holds a checked value, when not as the document gives it (`tables`: Table objects)."""
    written: Callable[[Any], Any] | None = None
    """How a held value is written back into a document: the inverse of `held`."""

    @property
    def path(self) -> str:
        return self.attribute or self.name

    def read(self, obj: Any) -> Any:
        """This setting's value on a config object."""
        return functools.reduce(getattr, self.path.split("."), obj)

    def problems(self, value: Any) -> list[str]:
        """Why `value` cannot be this setting's value (empty: it can); the caller prefixes where it is.

        None is "not set" for a setting whose default is None, and a missing required value is reported by
        whoever read the document (it knows whether the key was absent), so neither is a problem here.
        """
        if value is None and (self.default is None or self.default is REQUIRED):
            return []
        if self.type is bool:
            return [] if isinstance(value, bool) else ["must be true or false"]
        if self.low is not None and self.high is not None:
            problem = _number_problem(value, self.low, self.high, whole=self.type is int)
            if problem:
                return [problem]
        found = self.check(value) if self.check else []
        if not found and self.choices and value not in self.choices:
            found = [f"{value!r} is not one of {', '.join(str(c) for c in self.choices)}"]
        return found

    def stored(self, value: Any) -> Any:
        """The value as the config object holds it: JSON lists become tuples, so the object stays frozen."""
        if self.held is not None:
            return self.held(value)
        return tuple(value) if self.type is list else value

    def document(self, value: Any) -> Any:
        """A held value as a document writes it (the inverse of `stored`)."""
        if self.written is not None:
            return self.written(value)
        return list(value) if isinstance(value, tuple) else value

    def default_text(self) -> str:
        return _shown(self.default, self.unit)

    def range_text(self) -> str:
        if self.choices:
            return ", ".join(_shown(c, self.unit) for c in self.choices)
        if self.low is None or self.high is None:
            return ""
        return f"{_shown(self.low, self.unit)} to {_shown(self.high, self.unit)}"


def markdown_table(
    settings: Iterable[Setting], headers: Sequence[str] = ("field", "default", "range", "meaning")
) -> str:
    """A settings table as the docs show it; tests hold the README and docs/deploy.md to exactly this text."""
    rows = [list(headers), ["---"] * len(headers)]
    rows += [[f"`{s.name}`", s.default_text(), s.range_text(), s.doc] for s in settings]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in rows)


def _number_problem(value: Any, low: float, high: float, *, whole: bool) -> str | None:
    # bool is an int to Python, but `true` for a number is a mistake; NaN would pass every comparison.
    if isinstance(value, bool) or not isinstance(value, int if whole else int | float) or value != value:
        kind = "a whole number" if whole else "a number"
        return f"must be {kind} between {_number(low)} and {_number(high)}, got {value!r}"
    if not low <= value <= high:
        return f"must be between {_number(low)} and {_number(high)}, got {_number(value)}"
    return None


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _shown(value: Any, unit: str = "") -> str:
    """A value as the documentation writes it: JSON in code style, sizes and durations in their units."""
    if value is REQUIRED:
        return "required"
    if value is None:
        return "none"
    if isinstance(value, bool | list | tuple) or value == "":
        return f"`{json.dumps(list(value) if isinstance(value, tuple) else value)}`"
    if isinstance(value, str):
        return f"`{value}`"
    if unit == "bytes":
        for size, name in ((TiB, "TiB"), (GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
            if value >= size and value % size == 0:
                return f"{value // size} {name}"
    if unit == "seconds" and value >= DAY and value % DAY == 0:
        return f"{value // DAY} day{'s' if value > DAY else ''}"
    return _number(value)
