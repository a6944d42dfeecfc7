"""`verify`: a night's ledger checked against the bucket, the check DataSync calls verification.

Three streamed passes over one on-disk table of the night's copied lines (the decisions are in verify.py):

1. The manifests of the night's committed runs, line by line, into the table; each run's copied count against
   its summary's.
2. The listing of the prefix the night's keys live under, page by page, merged with the table in key order;
   every copied target and every listed key of the night is HEADed (side by side, `concurrency` at a time) for
   its size and lineage.
3. The state parts whose ranges hold the night's source keys, each streamed and merged with the table's lines
   of its range.

So memory stays flat whatever the night's size; `/tmp` holds the table (about 360 bytes a copied line), and the
requests are a listing of the prefix, a HEAD per object of the night, and a read of the state parts it touches.

With `checksums`, each of those HEADs asks for the object's content checksum too (`x-amz-checksum-mode:
ENABLED`, read from S3's metadata with no data read, as DataSync's verification without a full read), and each
copied object's is compared with what its manifest line recorded: no extra request.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date as Date

from ..contracts import QUARANTINE_FOLDER, Contracts
from ..integrity import Facts
from ..layout import LEDGER_ROOT, UNMATCHED_TABLE
from ..ledger import Ledger
from ..metadata import Lineage
from ..records import ObjectStatus, RunSummary
from ..state import chunks, scratch_db
from ..verify import (
    COPIED_COLUMNS,
    Checked,
    Copied,
    Findings,
    Kind,
    Landed,
    NightKeys,
    OutOfOrder,
    Problem,
    Scope,
    VerifyReport,
    checksum_problem,
    copied_problems,
    count_problem,
    duplicate_problem,
    merge_by_key,
    night_keys,
    state_problem,
    state_problems,
    unrecorded_problem,
)
from . import Job, committed_runs

log = logging.getLogger(__name__)

HEAD_CHUNK = 1000
"""Keys HEADed side by side before the listing is read further."""


def verify(
    job: Job,
    run_date: Date | None = None,
    run_id: str | None = None,
    on_problem: Callable[[Problem], None] | None = None,
    *,
    checksums: bool = False,
) -> VerifyReport:
    """Check one night (`run_date`, default: the last run's) or one committed run against the bucket; every
    problem is passed to `on_problem` as it is found, and the answer counts them and lists the first ones. With
    `checksums`, each copied object's content checksum is compared with the one its manifest line recorded."""
    ds, ledger = job.dataset, job.ledger
    open_run = ledger.open_run()
    date, runs = committed_runs(
        ledger,
        run_date,
        run_id,
        open_run.run_id if open_run else None,
        without_runs="pass --date to check a night's landed objects anyway",
    )
    in_progress = open_run.run_id if open_run is not None and open_run.date == date else None
    scope = Scope(ds.name, date, run_id, in_progress)
    tables = [name for name, _ in ds.table_patterns] + [UNMATCHED_TABLE] if ds.table_patterns else []
    quarantine = QUARANTINE_FOLDER if Contracts.of(ds) is not None else None  # schema contracts' folder too
    night = night_keys(
        ds.key_template,
        ds.target.prefix,
        Date.fromisoformat(date),
        dataset=ds.name,
        tables=tables,
        quarantine=quarantine,
    )
    findings = Findings(on_problem)
    listing = [ledger.paths.uri(prefix) for prefix in night.prefixes]
    log.info("verifying %s %s: %d run(s), listing %s", ds.name, date, len(runs), ", ".join(listing))
    with scratch_db() as db:
        copied_lines = _load_copied(db, ledger, runs, findings)
        bucket = _check_bucket(job, db, night, scope, findings, checksums)
        state_checked = _check_state(ledger, db, findings)
        drift = db.execute("SELECT COUNT(*) FROM copied WHERE schema_drift != ''").fetchone()[0]
    checked = Checked(copied_lines=copied_lines, state_checked=state_checked, schema_drift=drift, **bucket)
    return VerifyReport.of(scope, [run.run_id or "" for run in runs], listing, checked, checksums, findings)


_COPIED_TABLE = f"CREATE TABLE copied ({', '.join(COPIED_COLUMNS)})"
_INSERT = f"INSERT INTO copied VALUES ({', '.join('?' * len(COPIED_COLUMNS))})"
_SELECT = f"SELECT {', '.join(COPIED_COLUMNS)} FROM copied"


def _load_copied(db: sqlite3.Connection, ledger: Ledger, runs: list[RunSummary], findings: Findings) -> int:
    """Pass 1: every copied line of the runs into the table, and each run's count against its summary; the answer
    counts the lines."""
    db.execute(_COPIED_TABLE)
    total = 0
    for run in runs:
        assert run.run_id is not None
        copied = (
            Copied.of(line)
            for line in ledger.manifest_lines(run.date, run.run_id)
            if line.get("status") == ObjectStatus.COPIED
        )
        number = 0
        for chunk in chunks((line.as_row() for line in copied), 5000):
            with db:
                db.executemany(_INSERT, chunk)
            number += len(chunk)
        total += number
        findings.add(
            count_problem(run.manifest or ledger.manifest_uri(run.date, run.run_id), run.run_id, run.copied, number)
        )
    db.execute("CREATE INDEX copied_target ON copied (target_key)")
    db.execute("CREATE INDEX copied_source ON copied (source_key, run_id)")
    for target, runs_of in db.execute(
        "SELECT target_key, group_concat(run_id, ' ') FROM copied GROUP BY target_key HAVING COUNT(*) > 1"
    ):
        findings.add(duplicate_problem(target, runs_of.split(" ")))
    return total


def _check_bucket(
    job: Job, db: sqlite3.Connection, night: NightKeys, scope: Scope, findings: Findings, checksums: bool = False
) -> dict[str, int]:
    """Pass 2: the listing of the night's keys merged with the copied lines by key; each key HEADed once. The
    answer counts what it listed and compared, by the names `Checked` gives them."""
    bucket = job.dataset.target.bucket
    listed_keys = checked = compared = unrecorded = foreign = in_progress = 0

    def listed() -> Iterator[str]:
        nonlocal listed_keys
        for prefix in night.prefixes:  # sorted and disjoint: one after the other, they are in key order
            for item in job.store.iter_source_objects(bucket, prefix, skip_prefix=LEDGER_ROOT):
                if night.holds(item.key):
                    listed_keys += 1
                    yield item.key

    recorded = (Copied(*row) for row in db.execute(f"{_SELECT} ORDER BY target_key"))
    groups = merge_by_key(listed(), recorded, lambda key: key, lambda line: line.target_key)

    def head(key: str) -> Landed | None:
        found = job.store.head_or_none(bucket, key, checksums=checksums)
        if found is None:
            return None
        checksum = Facts.of(found).checksum if checksums else None
        return Landed(key, int(found.get("ContentLength") or 0), Lineage.of(found.get("Metadata")), checksum)

    with ThreadPoolExecutor(max_workers=job.dataset.concurrency, thread_name_prefix="verify") as pool:
        for chunk in chunks(groups, HEAD_CHUNK):
            checked += len(chunk)
            for (_, _, lines), landed in zip(chunk, pool.map(lambda group: head(group[0]), chunk), strict=True):
                if lines:
                    for line in lines:
                        findings.extend(copied_problems(line, landed))
                        if not checksums or landed is None:
                            continue
                        if line.checksum or line.source_checksum:
                            compared += 1
                            findings.add(checksum_problem(line, landed))
                        else:
                            unrecorded += 1  # a line from before checksums, or a server that reports none
                elif landed is not None:
                    problem = unrecorded_problem(landed, scope)
                    lineage = landed.lineage
                    if problem is not None:
                        findings.add(problem)
                    elif lineage is None or lineage.dataset != scope.dataset:
                        foreign += 1  # another dataset's, or put there by hand: not this ledger's to answer for
                    elif scope.in_progress is not None and lineage.run_id == scope.in_progress:
                        in_progress += 1
    return {
        "objects_listed": listed_keys,
        "objects_checked": checked,
        "foreign_objects": foreign,
        "in_progress_objects": in_progress,
        "checksums_checked": compared,
        "checksums_unrecorded": unrecorded,
    }


def _check_state(ledger: Ledger, db: sqlite3.Connection, findings: Findings) -> int:
    """Pass 3: each state part that holds some of the night's source keys, merged with the lines of its range; the
    answer counts the lines compared."""
    compared = 0

    def counted(lines: Iterator[Copied]) -> Iterator[Copied]:
        nonlocal compared
        for line in lines:
            compared += 1
            yield line

    for part, end in ledger.state_index().ranges():
        cursor = db.execute(*_in_range(part.start_after, end))
        first = cursor.fetchone()
        if first is None:
            continue
        lines = counted(Copied(*row) for row in itertools.chain([first], cursor))
        if part.part is None:
            findings.extend(p for p in map(lambda line: state_problem(line, None), lines) if p is not None)
            continue
        rows = ledger.state_part_rows(part.part)
        if rows is None:
            findings.add(Problem(Kind.STATE_DISAGREES, part.part, "the state index names this part, which is missing"))
            continue
        try:
            findings.extend(state_problems(lines, rows, part.part))
        except (OSError, EOFError, ValueError, zlib.error) as err:  # not gzip, not JSON, out of order
            what = "out of key order" if isinstance(err, OutOfOrder) else f"unreadable ({type(err).__name__}: {err})"
            findings.add(Problem(Kind.STATE_DISAGREES, part.part, f"the state part is {what}"))
    return compared


def _in_range(start_after: str | None, end_at: str | None) -> tuple[str, tuple[str, ...]]:
    """The copied lines of one key range in source key order, as a range scan of the source key's index (a
    condition like `? IS NULL OR key > ?` would scan the whole table once per state part)."""
    bounds = [("source_key > ?", start_after), ("source_key <= ?", end_at)]
    kept = [(condition, value) for condition, value in bounds if value is not None]
    where = f" WHERE {' AND '.join(c for c, _ in kept)}" if kept else ""
    return f"{_SELECT}{where} ORDER BY source_key, run_id", tuple(v for _, v in kept)
