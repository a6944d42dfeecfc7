"""Do two tables' glob patterns claim one key? A config-time check, so a catch-all beside specific tables
(`{"all": "*", "ratings": "ratings*.csv"}`) is refused before a run instead of failing every new file as
"ambiguous table" at plan time (layout.table_of stays the safety net).

Deciding whether two fnmatch globs intersect in general is more than a config check needs. What is checked is
sound, never a false alarm: each pattern's own literal examples (its wildcards filled with sample text, e.g.
`ratings*.csv` -> `ratings.csv`, `ratingsx.csv`) are matched against the other table's patterns; an example
that matches both is a key that would fail. That catches every pattern that covers another (`*`, `**`,
`*.csv` beside `ratings*.csv`) and most partial overlaps; the rest still fail at plan time, naming both tables.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from fnmatch import fnmatchcase

from .layout import UNMATCHED_TABLE, TablePatterns

_FILLS = ("", "x", "0", "x/x")
"""What each `*` becomes in a pattern's examples (one fill for the whole pattern)."""
_TOKEN = re.compile(r"\*+|\?|\[!?\]?[^\]]*\]|.", re.DOTALL)


def examples(pattern: str) -> Iterator[str]:
    """Keys `pattern` matches, made from its own text: `*` filled with each of _FILLS, `?` with one character,
    a `[set]` with a character it accepts. Only keys the pattern really matches, and that could name a file
    (not empty, not ending in `/`), are yielded."""
    for fill in _FILLS:
        key = "".join(_fill(token, fill) for token in _TOKEN.findall(pattern))
        if key and not key.endswith("/") and fnmatchcase(key, pattern):
            yield key


def _fill(token: str, fill: str) -> str:
    if token.startswith("*"):
        return fill
    if token == "?":
        return "x"
    if token.startswith("[") and len(token) > 2:
        inside = token[1:-1]
        if inside.startswith("!"):  # any character outside the set: try a few
            return next((c for c in "x0_-.aZ" if c not in inside[1:]), "~")
        return inside[0]
    return token


def overlap_problems(tables: TablePatterns) -> list[str]:
    """One problem per pair of tables whose patterns share a key found this way (empty: none found)."""
    problems: list[str] = []
    for n, (name, patterns) in enumerate(tables):
        for other, others in tables[n + 1 :]:
            found = _shared_key(patterns, others)
            if found is not None:
                mine, theirs, key = found
                problems.append(
                    f"tables: {name!r} ({mine!r}) and {other!r} ({theirs!r}) overlap: a key such as {key!r} matches "
                    "both, and a key matching two tables is not copied (ambiguous table); make the patterns "
                    "disjoint. A catch-all table is not needed: a file no table matches still lands, in the "
                    f"{UNMATCHED_TABLE!r} folder"
                )
    return problems


def _shared_key(
    patterns: tuple[str, ...] | list[str], others: tuple[str, ...] | list[str]
) -> tuple[str, str, str] | None:
    for mine in patterns:
        for theirs in others:
            for key in [*examples(theirs), *examples(mine)]:
                if fnmatchcase(key, mine) and fnmatchcase(key, theirs):
                    return mine, theirs, key
    return None
