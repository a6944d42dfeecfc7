"""What verification calls a problem: the ledger against the bucket, decided by pure functions over streams.

`ingest verify` (steps/verify.py) reads a night's copied manifest lines into an on-disk table, lists the target
prefix that night's keys live under page by page, HEADs what it must, and streams the state parts that hold the
night's source keys. Everything here decides from what those reads found; nothing here does I/O, and nothing
holds a whole listing or manifest: the merges walk two streams sorted by key (S3 lists in UTF-8 byte order,
which is Python's string order and SQLite's BINARY collation), so a night of millions of keys verifies in flat
memory.

The checks, each a `Kind`:

- every copied line's target exists (`missing`), with the line's size (`size_differs`), and carries lineage
  (`no_lineage`) naming the line's source object, ETag, dataset, run and date (`lineage_differs`);
- every object listed under the night's keys whose lineage says this dataset landed it that night is in a
  copied line (`not_in_manifest`);
- the state holds every copied line's version at its target, or a later run's landing of that key
  (`state_disagrees`);
- each run's summary counts its manifest's copied lines, and no two lines claim one target
  (`manifest_disagrees`);
- with `--checksums`, every copied object's content checksum, as a HEAD with `x-amz-checksum-mode: ENABLED` reads
  it from S3's metadata (no data is read), is the one its manifest line recorded when it landed, and the source's
  where that was recorded in the same algorithm (`checksum_differs`).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date as Date
from enum import StrEnum
from typing import Any, TypeVar

from .errors import IngestError
from .integrity import Checksum
from .metadata import Lineage
from .records import Record


class Kind(StrEnum):
    """What is wrong, one word a script can count (the JSON's `kind`)."""

    MISSING = "missing"
    SIZE_DIFFERS = "size_differs"
    NO_LINEAGE = "no_lineage"
    LINEAGE_DIFFERS = "lineage_differs"
    NOT_IN_MANIFEST = "not_in_manifest"
    STATE_DISAGREES = "state_disagrees"
    MANIFEST_DISAGREES = "manifest_disagrees"
    CHECKSUM_DIFFERS = "checksum_differs"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


@dataclass(frozen=True)
class Problem(Record):
    """One thing wrong: its kind, the key it is about, and what is wrong (the JSON's `problems`)."""

    kind: Kind
    key: str
    """A landed key, or a ledger object's (a manifest, a state part): what to look at."""
    detail: str
    run_id: str | None = None
    """The run whose record or landing is wrong (None: no one run's, as a state part the index names but lacks)."""

    def line(self) -> str:
        """The human form: kind first, so `grep` and `sort` group them; the key; what is wrong."""
        return f"{self.kind.label}: {self.key}: {self.detail}"


@dataclass(frozen=True)
class Copied:
    """A manifest line with status `copied`, as verification needs it."""

    target_key: str
    source_bucket: str
    source_key: str
    source_etag: str
    size: int
    dataset: str
    run_id: str
    date: str
    checksum: str = ""
    """The landed checksum the line recorded (`CRC64NVME:<base64>`); empty on a line from before checksums."""
    source_checksum: str = ""
    schema_drift: str = ""
    """How the file's header differed from its table's columns when it landed (empty: it did not, or unchecked)."""

    @classmethod
    def of(cls, line: Mapping[str, Any]) -> Copied:
        return cls(
            target_key=str(line.get("target_key") or ""),
            source_bucket=str(line.get("source_bucket") or ""),
            source_key=str(line.get("source_key") or ""),
            source_etag=str(line.get("source_etag") or ""),
            size=int(line.get("size") or 0),
            dataset=str(line.get("dataset") or ""),
            run_id=str(line.get("run_id") or ""),
            date=str(line.get("date") or ""),
            checksum=str(line.get("checksum") or ""),
            source_checksum=str(line.get("source_checksum") or ""),
            schema_drift=str(line.get("schema_drift") or ""),
        )

    def as_row(self) -> tuple[Any, ...]:
        return (
            self.target_key,
            self.source_bucket,
            self.source_key,
            self.source_etag,
            self.size,
            self.dataset,
            self.run_id,
            self.date,
            self.checksum,
            self.source_checksum,
            self.schema_drift,
        )


COPIED_COLUMNS = tuple(Copied.__dataclass_fields__)


@dataclass(frozen=True)
class Landed:
    """What a HEAD of a landed key said: its size and the lineage its metadata carries (None: none)."""

    key: str
    size: int
    lineage: Lineage | None
    checksum: Checksum | None = None
    """Read only in checksum mode (None: not asked, or the object reports none)."""


@dataclass(frozen=True)
class Scope:
    """Which landed objects one verification answers for: a dataset's night, or one run of it."""

    dataset: str
    date: str
    run_id: str | None = None
    """Only this run (`--run`); else every committed run of the date."""
    in_progress: str | None = None
    """The date's run still open (not committed): its objects are not in a manifest yet, and not checked."""

    def claims(self, lineage: Lineage | None) -> bool:
        """Whether an object with this lineage must be recorded by a copied line this verification read."""
        if lineage is None or lineage.dataset != self.dataset or lineage.date != self.date:
            return False
        if self.in_progress is not None and lineage.run_id == self.in_progress:
            return False
        return self.run_id is None or lineage.run_id == self.run_id


# ---- where a night's keys are -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NightKeys:
    """Where one date's landed keys can be: prefixes to list, and a pattern a key of that date matches.

    The pattern may match keys of other nights too (a folder named like a date); only lineage decides whether an
    object is the night's, so matching more only costs a HEAD, never a false problem."""

    prefixes: tuple[str, ...]
    """Sorted, none inside another: their listings, one after the other, are one listing in key order."""
    pattern: re.Pattern[str]

    def holds(self, key: str) -> bool:
        return any(key.startswith(p) for p in self.prefixes) and self.pattern.fullmatch(key) is not None


def night_keys(
    template: str,
    target_prefix: str,
    run_date: Date,
    *,
    dataset: str | None = None,
    tables: Sequence[str] = (),
    quarantine: str | None = None,
) -> NightKeys:
    """Where the key template lands one date's objects.

    The listing runs through the template's literal text and the placeholders whose value is known (the date's,
    `{dataset}`, and `{table}` for each of `tables`, the dataset's table names and the unmatched folder) up to its
    first other placeholder: `{date}/{path}` lists only that date's folder, `{table}/ingest_date={date}/{path}`
    one folder per table, and the default `{dir}/ingest_date={date}/{name}` has to list the whole target prefix.
    Every other placeholder (including ones added later) matches anything. Rendering drops empty segments (an
    empty `{dir}` leaves no leading `/`), so a literal `/` may be absent or repeated. With `quarantine` (schema
    contracts' folder, `_quarantine/`), the same keys under `<target_prefix><quarantine>` are the night's too.
    """
    known: dict[str, tuple[str, ...]] = {
        "date": (run_date.isoformat(),),
        "yyyy": (f"{run_date.year:04d}",),
        "mm": (f"{run_date.month:02d}",),
        "dd": (f"{run_date.day:02d}",),
    }
    if dataset is not None:
        known["dataset"] = (dataset,)
    if tables:
        known["table"] = tuple(tables)
    heads, listing = [""], True
    regex = [re.escape(target_prefix), f"(?:{re.escape(quarantine)})?" if quarantine else ""]
    for literal, name, _, _ in string.Formatter().parse(template):
        regex.extend("/*" if c == "/" else re.escape(c) for c in literal)
        if listing:
            heads = [head + literal for head in heads]
        if name is None:
            continue
        values = known.get(name)
        if values is None:
            regex.append(".*")
            listing = False
            continue
        regex.append("(?:" + "|".join(re.escape(value) for value in values) + ")")
        if listing:
            heads = [head + value for head in heads for value in values]
    folders = [target_prefix] + ([target_prefix + quarantine] if quarantine else [])
    prefixes = sorted({folder + re.sub("/+", "/", head).lstrip("/") for folder in folders for head in heads})
    outermost = tuple(p for p in prefixes if not any(p != q and p.startswith(q) for q in prefixes))
    return NightKeys(outermost, re.compile("".join(regex), re.DOTALL))


# ---- merging sorted streams -------------------------------------------------------------------------------

L = TypeVar("L")
R = TypeVar("R")


class OutOfOrder(IngestError, ValueError):
    """A stream that must be sorted by key was not: a server that lists out of order, or a damaged state part."""


def _checked_order(items: Iterable[L], key: Callable[[L], str], what: str) -> Iterator[tuple[str, L]]:
    previous: str | None = None
    for item in items:
        k = key(item)
        if previous is not None and k < previous:
            raise OutOfOrder(f"{what} is not in key order: {k!r} came after {previous!r}")
        previous = k
        yield k, item


def merge_by_key(
    left: Iterable[L],
    right: Iterable[R],
    left_key: Callable[[L], str],
    right_key: Callable[[R], str],
    *,
    left_name: str = "the listing",
    right_name: str = "the manifest lines",
) -> Iterator[tuple[str, list[L], list[R]]]:
    """Two streams sorted by key, walked side by side: each key once, with the items of each stream that have it."""
    lefts = _checked_order(left, left_key, left_name)
    rights = _checked_order(right, right_key, right_name)
    a, b = next(lefts, None), next(rights, None)
    while a is not None or b is not None:
        key = min(pair[0] for pair in (a, b) if pair is not None)
        mine: list[L] = []
        theirs: list[R] = []
        while a is not None and a[0] == key:
            mine.append(a[1])
            a = next(lefts, None)
        while b is not None and b[0] == key:
            theirs.append(b[1])
            b = next(rights, None)
        yield key, mine, theirs


# ---- the decisions ----------------------------------------------------------------------------------------


def copied_problems(line: Copied, landed: Landed | None) -> list[Problem]:
    """What is wrong with the object a copied line says landed (nothing: it is there, that size, that lineage).

    The ETag is not compared: a multipart copy's differs from its source's by design (the copy step compared it
    where it could, README "Limits")."""
    key, run = line.target_key, line.run_id
    if landed is None:
        return [Problem(Kind.MISSING, key, f"copied by run {run} from {line.source_key}, not in the bucket", run)]
    problems = []
    if landed.size != line.size:
        problems.append(
            Problem(Kind.SIZE_DIFFERS, key, f"{landed.size} bytes in the bucket, {line.size} in the manifest", run)
        )
    lineage = landed.lineage
    if lineage is None:
        problems.append(
            Problem(Kind.NO_LINEAGE, key, "the object has no lineage metadata (replaced or rewritten since)", run)
        )
        return problems
    wrong = [
        f"{name} {found!r} (manifest: {wanted!r})"
        for name, found, wanted in (
            ("source bucket", lineage.source_bucket, line.source_bucket),
            ("source key", lineage.source_key, line.source_key),
            ("source ETag", lineage.source_etag, line.source_etag),
            ("dataset", lineage.dataset, line.dataset),
            ("run", lineage.run_id, line.run_id),
            ("date", lineage.date, line.date),
        )
        if found != wanted
    ]
    if wrong:
        problems.append(Problem(Kind.LINEAGE_DIFFERS, key, "lineage names " + ", ".join(wrong), run))
    return problems


def checksum_problem(line: Copied, landed: Landed) -> Problem | None:
    """Whether the object's checksum now is the one its line recorded when it landed, and the source's where one
    of the same algorithm was recorded: other bytes of the same size, or a copy that never was the source's,
    show here and nowhere else. None also when the line recorded nothing to compare (a line from before
    checksums): `checksum_unrecorded` counts those."""
    key, run = line.target_key, line.run_id
    recorded, source = Checksum.parse(line.checksum), Checksum.parse(line.source_checksum)
    found = landed.checksum
    if recorded is None and source is None:
        return None
    if found is None:
        wanted = recorded or source
        return Problem(
            Kind.CHECKSUM_DIFFERS,
            key,
            f"the object reports no checksum; the manifest recorded {wanted} (replaced by a writer without one?)",
            run,
        )
    if recorded is not None:
        if recorded.algorithm != found.algorithm:
            return Problem(
                Kind.CHECKSUM_DIFFERS,
                key,
                f"the object has a {found.algorithm} checksum, the manifest recorded {recorded.algorithm} "
                f"({recorded.value}): it was rewritten since it landed",
                run,
            )
        if recorded.value != found.value:
            return Problem(
                Kind.CHECKSUM_DIFFERS,
                key,
                f"{found.algorithm} {found.value} in the bucket, {recorded.value} in the manifest: other bytes than "
                "those that landed",
                run,
            )
    if source is not None and source.comparable(found) and source.value != found.value:
        return Problem(
            Kind.CHECKSUM_DIFFERS,
            key,
            f"{found.algorithm} {found.value} in the bucket, {source.value} recorded for the source "
            f"{line.source_key} (ETag {line.source_etag}): not the source's bytes",
            run,
        )
    return None


def unrecorded_problem(landed: Landed, scope: Scope) -> Problem | None:
    """An object no copied line of the scope names: a problem when its lineage says the scope landed it."""
    lineage = landed.lineage
    if lineage is None or not scope.claims(lineage):
        return None
    return Problem(
        Kind.NOT_IN_MANIFEST,
        landed.key,
        f"landed by run {lineage.run_id} from {lineage.source_key} (ETag {lineage.source_etag}) on {lineage.date}, "
        "but no copied manifest line of that date records it",
        lineage.run_id,
    )


def state_problem(line: Copied, row: Mapping[str, Any] | None) -> Problem | None:
    """Whether the state agrees with a copied line: it holds that version at that target, or a later run landed
    the key again (the state keeps a key's newest landing only)."""
    key, run = line.target_key, line.run_id
    if row is None:
        return Problem(Kind.STATE_DISAGREES, key, f"the state has no row for source key {line.source_key}", run)
    row_run = str(row.get("run_id") or "")
    if row_run > run:
        return None  # landed again by a later run (run ids sort by their start time)
    if row_run < run:
        return Problem(
            Kind.STATE_DISAGREES,
            key,
            f"the state still records source key {line.source_key} as landed by the earlier run {row_run} "
            f"(ETag {row.get('etag')}), not by run {run}",
            run,
        )
    found = (row.get("etag"), row.get("target"), row.get("size"))
    if found == (line.source_etag, line.target_key, line.size):
        return None
    return Problem(
        Kind.STATE_DISAGREES,
        key,
        f"the state records source key {line.source_key} with ETag {found[0]} at {found[1]} ({found[2]} bytes); "
        f"the manifest says ETag {line.source_etag} at {line.target_key} ({line.size} bytes)",
        run,
    )


def state_problems(lines: Iterable[Copied], rows: Iterable[Mapping[str, Any]], part: str) -> Iterator[Problem]:
    """Copied lines (sorted by source key) against the rows of the state part that holds their range (sorted)."""
    for _, found, wanted in merge_by_key(
        rows,
        lines,
        lambda row: str(row.get("key") or ""),
        lambda line: line.source_key,
        left_name=f"state part {part}",
        right_name="the copied lines",
    ):
        for line in wanted:
            problem = state_problem(line, found[0] if found else None)
            if problem is not None:
                yield problem


def count_problem(manifest: str, run_id: str, summary_copied: int, lines_copied: int) -> Problem | None:
    """A run's summary and its manifest must count the same copies (a lost or damaged manifest part shows here)."""
    if summary_copied == lines_copied:
        return None
    return Problem(
        Kind.MANIFEST_DISAGREES,
        manifest,
        f"run {run_id}'s summary says {summary_copied} copied; its manifest has {lines_copied} copied lines",
        run_id,
    )


def duplicate_problem(target: str, runs: list[str]) -> Problem:
    return Problem(
        Kind.MANIFEST_DISAGREES,
        target,
        f"{len(runs)} copied lines claim this key (runs {', '.join(sorted(runs))}); one object cannot be both",
        sorted(runs)[0],
    )


# ---- the tally ---------------------------------------------------------------------------------------------

MAX_LISTED_PROBLEMS = 1000
"""Problems kept in the answer; all are counted, and all are streamed to the caller as they are found."""


@dataclass
class Findings:
    """Problems as they are found: every one passed on (the CLI prints each at once), counted by kind, and the
    first MAX_LISTED_PROBLEMS kept for the JSON answer, so a night with a million problems stays small."""

    on_problem: Callable[[Problem], None] | None = None
    kept: list[Problem] = field(default_factory=list)
    by_kind: dict[str, int] = field(default_factory=dict)

    def add(self, problem: Problem | None) -> None:
        if problem is None:
            return
        self.by_kind[problem.kind.value] = self.by_kind.get(problem.kind.value, 0) + 1
        if len(self.kept) < MAX_LISTED_PROBLEMS:
            self.kept.append(problem)
        if self.on_problem is not None:
            self.on_problem(problem)

    def extend(self, problems: Iterable[Problem]) -> None:
        for problem in problems:
            self.add(problem)

    @property
    def count(self) -> int:
        return sum(self.by_kind.values())


# ---- the answer --------------------------------------------------------------------------------------------

CLEAN, PROBLEMS = "clean", "problems"


@dataclass(frozen=True)
class Checked:
    """How much one verification read and compared: "clean" says something only beside what was checked (a
    night whose listing matched nothing is clean too)."""

    copied_lines: int
    """Copied manifest lines of the scope's runs: each one names an object the bucket must hold."""
    objects_listed: int
    """Keys listed under the night's prefixes that the key template could have landed that night."""
    objects_checked: int
    """Keys HEADed: every listed key and every copied line's target, each once."""
    foreign_objects: int
    """Listed objects whose lineage names another dataset or nothing (put there by hand): not this ledger's."""
    in_progress_objects: int
    """Listed objects the night's open run landed: no manifest records them yet, so they are not checked."""
    state_checked: int
    """Copied lines compared with the state part that holds their source key."""
    checksums_checked: int
    """Copied objects whose content checksum was compared with their line's (only with `checksums`)."""
    checksums_unrecorded: int
    """Copied lines that recorded no checksum to compare (from before checksums, or a server that reports none)."""
    schema_drift: int = 0
    """Copied lines whose file's header differed from its table's columns (landed or quarantined as its table's
    `on_schema_drift` says): not a problem of the ledger, but what a reader of the night must know."""


@dataclass(frozen=True)
class VerifyReport:
    """What `verify` answers (`ingest verify --json`): what it answered for, what it checked, and the problems,
    counted by kind, of which the first MAX_LISTED_PROBLEMS are listed."""

    scope: Scope
    runs: tuple[str, ...]
    """The committed runs whose manifests were read, in the order they ran."""
    listing: tuple[str, ...]
    """The prefixes listed (s3:// URIs): where the night's keys can be."""
    checked: Checked
    checksums: bool
    """Whether content checksums were compared (`--checksums`)."""
    problems_by_kind: Mapping[str, int]
    problems: tuple[Problem, ...]

    @classmethod
    def of(
        cls,
        scope: Scope,
        runs: Sequence[str],
        listing: Sequence[str],
        checked: Checked,
        checksums: bool,
        found: Findings,
    ) -> VerifyReport:
        return cls(
            scope,
            tuple(runs),
            tuple(listing),
            checked,
            checksums,
            dict(sorted(found.by_kind.items())),
            tuple(found.kept),
        )

    @property
    def problem_count(self) -> int:
        return sum(self.problems_by_kind.values())

    @property
    def status(self) -> str:
        return PROBLEMS if self.problem_count else CLEAN

    def to_json(self) -> dict[str, Any]:
        scope, checked = self.scope, self.checked
        return {
            "dataset": scope.dataset,
            "date": scope.date,
            "run_id": scope.run_id,
            "runs": list(self.runs),
            "status": self.status,
            "listing": list(self.listing),
            "copied_lines": checked.copied_lines,
            "objects_listed": checked.objects_listed,
            "objects_checked": checked.objects_checked,
            "foreign_objects": checked.foreign_objects,
            "in_progress": scope.in_progress,
            "in_progress_objects": checked.in_progress_objects,
            "state_checked": checked.state_checked,
            "checksums": self.checksums,
            "checksums_checked": checked.checksums_checked,
            "checksums_unrecorded": checked.checksums_unrecorded,
            "schema_drift": checked.schema_drift,
            "problem_count": self.problem_count,
            "problems_by_kind": dict(self.problems_by_kind),
            "problems": [problem.to_json() for problem in self.problems],
        }
