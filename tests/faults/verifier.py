"""Exactly-once, judged from what a downstream reader can see: the buckets and the ledger's files alone.

The campaign runs the real CLI under faults and then asks this module whether the promise held. It reads no
runtime code path: only object listings, HEADs and the ledger files, whose field names come from
handler/records.py (`ManifestLine.stamped`: source_key, source_etag, size, target_key, status, reason,
ingested_at, dataset, run_id, date, source_bucket, target_bucket) and handler/state.py (`COLUMNS`). So a bug in
the runtime's own reading of its ledger cannot hide a bug in its writing.

Every violation is one human-readable line that starts with its kind, so a campaign can count them:
`lost:`, `duplicated:`, `orphan:`, `lineage:`, `bytes:`, `ledger:`, `state:`, `unsettled:`, `overwritten:`.

One (source key, ETag) landing twice is a violation even if the source went back to identical bytes in between;
the campaign never does that, so a repeat can only be a double landing.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from handler.records import ManifestLine
from handler.state import COLUMNS as STATE_COLUMNS

LEDGER_ROOT = "_ingestion/"
SOURCE_BUCKET = "ingest-source-bucket"
SOURCE_KEY = "ingest-source-key"
SOURCE_ETAG = "ingest-source-etag"
RUN_ID = "ingest-run-id"
DATE = "ingest-date"
LINEAGE_REQUIRED = (SOURCE_BUCKET, SOURCE_KEY, SOURCE_ETAG, RUN_ID, DATE)

MANIFEST_FIELDS = frozenset(
    ["source_key", "source_etag", "size", "target_key", "status", "reason", "ingested_at"]
    + ["dataset", "run_id", "date", "source_bucket", "target_bucket"]
)
assert {"source_key", "source_etag", "size", "target_key", "status"} <= {
    f for f in ManifestLine.__dataclass_fields__
}, "handler/records.py renamed a manifest field: update the verifier"
assert tuple(STATE_COLUMNS) == ("key", "etag", "size", "target", "run_id", "date", "ingested_at"), (
    "handler/state.py changed the state file's columns: update the verifier"
)

KINDS = ("lost", "duplicated", "orphan", "lineage", "bytes", "ledger", "state", "unsettled", "overwritten")


def kind_of(violation: str) -> str:
    return violation.split(":", 1)[0]


def tally(violations: list[str]) -> Counter[str]:
    """Violations by kind (for the RELIABILITY.md table's lost / duplicated columns)."""
    return Counter(kind_of(v) for v in violations)


# ---- reading the buckets --------------------------------------------------------------------------------------


def _listing(s3: Any, bucket: str, prefix: str = "") -> Iterator[dict[str, Any]]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", ())


def _etag(value: str) -> str:
    return value.strip('"')


def lineage_of(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """User metadata with lower-case names (rclone title-cases them) and the source key decoded."""
    meta = {str(k).lower(): v for k, v in (metadata or {}).items()}
    if SOURCE_KEY in meta:
        meta[SOURCE_KEY] = unquote(meta[SOURCE_KEY])
    return meta


def _body(s3: Any, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


Snapshot = dict[str, tuple[str, dict[str, str]]]


def snapshot(s3: Any, bucket: str) -> Snapshot:
    """Every landed object (outside `_ingestion/`): key -> (ETag, lineage). A recopy of the same bytes keeps the
    ETag but changes the lineage's timestamp and run, so comparing snapshots catches it."""
    result: Snapshot = {}
    for item in _listing(s3, bucket):
        key = item["Key"]
        if key.startswith(LEDGER_ROOT):
            continue
        head = s3.head_object(Bucket=bucket, Key=key)
        result[key] = (_etag(item["ETag"]), lineage_of(head.get("Metadata")))
    return result


def overwritten(before: Snapshot, after: Snapshot) -> list[str]:
    """What an earlier run landed must stay exactly as it was: never deleted, never rewritten."""
    problems = []
    for key, (etag, lineage) in sorted(before.items()):
        if key not in after:
            problems.append(f"overwritten: {key!r} (from {lineage.get(SOURCE_KEY)!r}) was deleted")
            continue
        now_etag, now_lineage = after[key]
        if (now_etag, now_lineage) != (etag, lineage):
            changed = sorted(
                name for name in set(lineage) | set(now_lineage) if lineage.get(name) != now_lineage.get(name)
            )
            what = f"ETag {etag} -> {now_etag}" if now_etag != etag else "same ETag"
            problems.append(f"overwritten: {key!r} was rewritten ({what}; lineage changed: {', '.join(changed)})")
    return problems


# ---- the verdict ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Object:
    key: str
    etag: str
    size: int
    lineage: dict[str, str]

    @property
    def version(self) -> tuple[str, str]:
        return self.lineage.get(SOURCE_KEY, ""), self.lineage.get(SOURCE_ETAG, "")


def verify(
    s3: Any,
    source_bucket: str,
    raw_bucket: str,
    dataset_name: str,
    ledger_prefix: str | None = None,
    expected: Mapping[str, str] | None = None,
    *,
    settled: bool = False,
    check_bytes: bool = False,
    etags_are_md5: bool = True,
    checksum_verified: bool = False,
) -> list[str]:
    """Every violation of exactly-once the buckets and the ledger show; empty when all invariants hold.

    `expected` maps source key -> ETag that a finished night saw: each must have landed exactly once.
    `settled`: the last run exited 0, so no lock, no open run and no work files may be left, and every run in the
    ledger must be committed whole (its summary, and its marker when it landed something). `check_bytes` also
    compares the bytes of each landed object with its source while the source still holds that version.
    `etags_are_md5=False` (a KMS, DSSE or SSE-C bucket on either side: their ETags are not MD5s) drops the ETag
    comparison of a landed object with its source, which could only fail there; compare bytes instead.
    `checksum_verified` (S3 as modelled: every object has a full-object checksum) requires every copied line to
    say it was verified by checksum, and to record equal landed and source checksums.
    """
    ledger_prefix = ledger_prefix or f"{LEDGER_ROOT}{dataset_name}/"
    violations: list[str] = []
    raw_listing = list(_listing(s3, raw_bucket))
    objects = {
        item["Key"]: _Object(
            item["Key"],
            _etag(item["ETag"]),
            int(item["Size"]),
            lineage_of(s3.head_object(Bucket=raw_bucket, Key=item["Key"]).get("Metadata")),
        )
        for item in raw_listing
        if not item["Key"].startswith(LEDGER_ROOT)
    }
    ledger_keys = {item["Key"] for item in raw_listing if item["Key"].startswith(ledger_prefix)}
    source = {item["Key"]: (_etag(item["ETag"]), int(item["Size"])) for item in _listing(s3, source_bucket)}
    lines, manifest_problems = _manifest_lines(s3, raw_bucket, ledger_prefix, ledger_keys)
    violations += manifest_problems
    copied = [line for line in lines if line.get("status") == "copied"]

    violations += _check_objects(s3, objects, source, source_bucket, raw_bucket, copied, check_bytes, etags_are_md5)
    violations += _check_copied_lines(objects, copied, source_bucket, raw_bucket)
    if checksum_verified:
        violations += _check_verified_by_checksum(copied)
    if expected is not None:
        violations += _check_expected(objects, copied, expected)
    violations += _check_state(s3, raw_bucket, ledger_prefix, ledger_keys, copied)
    if settled:
        violations += _check_settled(s3, raw_bucket, ledger_prefix, ledger_keys, lines)
    return violations


def _check_verified_by_checksum(copied: list[dict[str, Any]]) -> list[str]:
    return [
        f"checksum: {line['_manifest']} records {line.get('source_key')!r} verified by {line.get('verified')!r} "
        f"(landed {line.get('checksum')}, source {line.get('source_checksum')}), not by equal checksums"
        for line in copied
        if line.get("verified") != "checksum"
        or not line.get("checksum")
        or line.get("checksum") != line.get("source_checksum")
    ]


def _manifest_lines(
    s3: Any, bucket: str, ledger_prefix: str, ledger_keys: set[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every manifest line, each with `_manifest` (the file it came from); and problems with the files."""
    lines: list[dict[str, Any]] = []
    problems: list[str] = []
    root = f"{ledger_prefix}manifest/"
    for key in sorted(k for k in ledger_keys if k.startswith(root)):
        name = key[len(root) :]  # date=D/<run_id>-<shard>.jsonl (before shards: date=D/<run_id>.jsonl)
        date_part, _, file = name.partition("/")
        run_id = _run_of(file)
        for number, text in enumerate(_body(s3, bucket, key).decode("utf-8").splitlines(), 1):
            if not text.strip():
                continue
            try:
                line = json.loads(text)
            except json.JSONDecodeError as err:
                problems.append(f"ledger: {key} line {number} is not JSON ({err})")
                continue
            missing = MANIFEST_FIELDS - set(line)
            if missing:
                problems.append(f"ledger: {key} line {number} lacks {sorted(missing)}")
            if (f"date={line.get('date')}", line.get("run_id")) != (date_part, run_id):
                problems.append(
                    f"ledger: {key} line {number} says run {line.get('run_id')} date {line.get('date')}, not the file's"
                )
            lines.append({**line, "_manifest": key})
    return lines, problems


def _run_of(manifest_file: str) -> str:
    """The run id in a manifest part's name (`<run_id>-00003.jsonl`), or a whole manifest's (`<run_id>.jsonl`)."""
    match = re.fullmatch(r"(.+)-(\d{5})\.jsonl", manifest_file)
    return match.group(1) if match else manifest_file.removesuffix(".jsonl")


def _state_rows(
    s3: Any, bucket: str, ledger_prefix: str, ledger_keys: set[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every state row, read through the index to its parts, checking each part holds exactly its range; a state
    of the version before shards is its one file."""
    index_key, legacy = f"{ledger_prefix}state/index.json", f"{ledger_prefix}state/current.jsonl.gz"
    if index_key in ledger_keys:
        index = json.loads(_body(s3, bucket, index_key))
        parts = index.get("parts") or []
    elif legacy in ledger_keys:
        parts = [{"start_after": None, "part": legacy, "keys": -1}]
    else:
        return [], []
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    starts = [p.get("start_after") for p in parts]
    if starts[:1] != [None] or any(
        a is None or b is None or a >= b for a, b in zip(starts[1:], starts[2:], strict=False)
    ):
        problems.append(f"state: index ranges are not open below and strictly increasing: {starts[:5]}...")
    for number, part in enumerate(parts):
        low, high = part.get("start_after"), starts[number + 1] if number + 1 < len(parts) else None
        if not part.get("part"):
            continue
        if part["part"] not in ledger_keys:
            problems.append(f"state: the index names {part['part']}, which is missing")
            continue
        try:
            text = gzip.decompress(_body(s3, bucket, part["part"])).decode("utf-8")
            mine = [json.loads(row) for row in text.splitlines() if row.strip()]
        except (OSError, ValueError) as err:
            problems.append(f"state: {part['part']} is not gzipped JSON Lines ({err})")
            continue
        outside = [
            r.get("key")
            for r in mine
            if not ((low is None or r.get("key") > low) and (high is None or r.get("key") <= high))
        ]
        if outside:
            problems.append(f"state: {part['part']} holds {len(outside)} keys outside its range, e.g. {outside[0]!r}")
        if part.get("keys", -1) >= 0 and part["keys"] != len(mine):
            problems.append(f"state: the index says {part['part']} holds {part['keys']} keys; it holds {len(mine)}")
        rows += mine
    return rows, problems


def _check_objects(
    s3: Any,
    objects: dict[str, _Object],
    source: dict[str, tuple[str, int]],
    source_bucket: str,
    raw_bucket: str,
    copied: list[dict[str, Any]],
    check_bytes: bool,
    etags_are_md5: bool = True,
) -> list[str]:
    problems = []
    claims: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in copied:
        claims[line.get("target_key") or ""].append(line)
    for key, obj in sorted(objects.items()):
        missing = [name for name in LINEAGE_REQUIRED if name not in obj.lineage]
        if missing:
            problems.append(f"lineage: {key!r} lacks lineage metadata {missing}")
        elif obj.lineage[SOURCE_BUCKET] != source_bucket:
            problems.append(f"lineage: {key!r} claims source bucket {obj.lineage[SOURCE_BUCKET]!r}")
        source_key, source_etag = obj.version
        current = source.get(source_key)
        if not missing and current is not None and current[0] == source_etag:
            # The source still holds the version this object claims to be: it must be that version.
            if obj.size != current[1]:
                problems.append(f"bytes: {key!r} is {obj.size} bytes, its source {source_key!r} {current[1]}")
            elif etags_are_md5 and "-" not in obj.etag and "-" not in source_etag and obj.etag != source_etag:
                problems.append(f"bytes: {key!r} has ETag {obj.etag}, its source {source_key!r} {source_etag}")
            elif check_bytes and _body(s3, raw_bucket, key) != _body(s3, source_bucket, source_key):
                problems.append(f"bytes: {key!r} differs from its source {source_key!r}")
        mine = claims.get(key, [])
        if not mine:
            problems.append(
                f"orphan: {key!r} (from {source_key!r} ETag {source_etag}, run {obj.lineage.get(RUN_ID)}) is in "
                "no manifest's copied lines"
            )
            continue
        if len(mine) > 1:
            problems.append(
                f"duplicated: {key!r} is claimed by {len(mine)} copied lines "
                f"({', '.join(sorted(line['_manifest'] for line in mine))})"
            )
        for line in mine:
            wanted = {
                "source_key": source_key,
                "source_etag": source_etag,
                "run_id": obj.lineage.get(RUN_ID),
                "date": obj.lineage.get(DATE),
                "size": obj.size,
            }
            wrong = {name: (line.get(name), value) for name, value in wanted.items() if line.get(name) != value}
            if wrong:
                detail = ", ".join(f"{name} line={a!r} object={b!r}" for name, (a, b) in sorted(wrong.items()))
                problems.append(f"lineage: {key!r} disagrees with its line in {line['_manifest']}: {detail}")
    versions = Counter(obj.version for obj in objects.values() if obj.version != ("", ""))
    for (source_key, source_etag), count in sorted(versions.items()):
        if count > 1:
            keys = sorted(k for k, o in objects.items() if o.version == (source_key, source_etag))
            problems.append(f"duplicated: {source_key!r} ETag {source_etag} landed {count} times: {keys}")
    return problems


def _check_copied_lines(
    objects: dict[str, _Object], copied: list[dict[str, Any]], source_bucket: str, raw_bucket: str
) -> list[str]:
    problems = []
    for line in copied:
        target = line.get("target_key")
        if target not in objects:
            problems.append(
                f"lost: {line['_manifest']} says {line.get('source_key')!r} ETag {line.get('source_etag')} was "
                f"copied to {target!r}, which does not exist"
            )
        if (line.get("source_bucket"), line.get("target_bucket")) != (source_bucket, raw_bucket):
            problems.append(
                f"ledger: {line['_manifest']} names buckets {line.get('source_bucket')!r}, "
                f"{line.get('target_bucket')!r}"
            )
    versions = Counter((line.get("source_key"), line.get("source_etag")) for line in copied)
    for (source_key, source_etag), count in sorted(versions.items(), key=str):
        if count > 1:
            where = sorted(
                line["_manifest"]
                for line in copied
                if (line.get("source_key"), line.get("source_etag")) == (source_key, source_etag)
            )
            problems.append(f"duplicated: {source_key!r} ETag {source_etag} has {count} copied lines: {where}")
    return problems


def _check_expected(
    objects: dict[str, _Object], copied: list[dict[str, Any]], expected: Mapping[str, str]
) -> list[str]:
    problems = []
    landed = Counter(obj.version for obj in objects.values())
    recorded = Counter((line.get("source_key"), line.get("source_etag")) for line in copied)
    for source_key, etag in sorted(expected.items()):
        version = (source_key, _etag(etag))
        if landed[version] == 0:
            problems.append(f"lost: {source_key!r} ETag {version[1]} never landed")
        elif recorded[version] == 0:
            problems.append(f"lost: {source_key!r} ETag {version[1]} landed but no manifest records it")
        # More than once is reported by the object and line checks already.
    return problems


def _check_state(
    s3: Any, bucket: str, ledger_prefix: str, ledger_keys: set[str], copied: list[dict[str, Any]]
) -> list[str]:
    """The state must be the newest copied line of every source key: the next plan trusts nothing else."""
    newest: dict[str, dict[str, Any]] = {}
    for line in copied:
        current = newest.get(line.get("source_key"))
        order = (line.get("ingested_at") or "", line.get("run_id") or "")
        if current is None or order > (current.get("ingested_at") or "", current.get("run_id") or ""):
            newest[line.get("source_key")] = line
    if not any(k.startswith(f"{ledger_prefix}state/") for k in ledger_keys):
        return [f"state: no state, but {len(newest)} source keys have copied lines"] if newest else []
    rows, problems = _state_rows(s3, bucket, ledger_prefix, ledger_keys)
    state: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.get("key") in state:
            problems.append(f"state: {row.get('key')!r} has two rows")
        state[row.get("key")] = row
    for source_key, line in sorted(newest.items(), key=lambda item: str(item[0])):
        row = state.get(source_key)
        if row is None:
            problems.append(f"state: {source_key!r} landed ({line['_manifest']}) but has no state row")
            continue
        wanted = {
            "etag": line.get("source_etag"),
            "size": line.get("size"),
            "target": line.get("target_key"),
            "run_id": line.get("run_id"),
            "date": line.get("date"),
        }
        wrong = {name: (row.get(name), value) for name, value in wanted.items() if row.get(name) != value}
        if wrong:
            detail = ", ".join(f"{name} state={a!r} newest line={b!r}" for name, (a, b) in sorted(wrong.items()))
            problems.append(f"state: {source_key!r} is stale: {detail}")
    for source_key in sorted(set(state) - set(newest), key=str):
        problems.append(f"state: {source_key!r} has a row but no copied manifest line")
    return problems


def _left_behind(s3: Any, bucket: str, key: str) -> str:
    """What a leftover ledger document says about the write that left it (which run, written when, by whom):
    a lock put back after its release shows which process wrote it last and at what time."""
    try:
        document = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        modified = s3.head_object(Bucket=bucket, Key=key)["LastModified"].isoformat()
    except Exception as err:  # noqa: BLE001 - a detail for the report, never a second failure
        return f" (unreadable: {type(err).__name__})"
    shown = {k: document[k] for k in ("run_id", "owner", "acquired_at", "renewed_at", "expires_at") if k in document}
    return f" ({', '.join(f'{k}={v}' for k, v in shown.items())}, last modified {modified})"


def _check_settled(
    s3: Any, bucket: str, ledger_prefix: str, ledger_keys: set[str], lines: list[dict[str, Any]]
) -> list[str]:
    problems = []
    for name in ("open-run.json", "lock.json"):
        if f"{ledger_prefix}{name}" in ledger_keys:
            detail = _left_behind(s3, bucket, f"{ledger_prefix}{name}")
            problems.append(f"unsettled: {ledger_prefix}{name} is left after a run that exited 0{detail}")
    work = sorted(k for k in ledger_keys if k.startswith(f"{ledger_prefix}work/"))
    if work:
        problems.append(f"unsettled: {len(work)} work files left, e.g. {work[0]}")
    problems += _state_garbage(s3, bucket, ledger_prefix, ledger_keys)
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    root = f"{ledger_prefix}manifest/"
    for line in lines:
        date_part, _, file = line["_manifest"][len(root) :].partition("/")
        by_run[f"{date_part}/{_run_of(file)}"].append(line)
    parts: dict[str, set[str]] = defaultdict(set)
    for manifest in (k for k in ledger_keys if k.startswith(root)):
        date_part, _, file = manifest[len(root) :].partition("/")
        parts[f"{date_part}/{_run_of(file)}"].add(manifest)
    for tail in sorted(parts):
        summary_key, marker_key = f"{ledger_prefix}summary/{tail}.json", f"{ledger_prefix}complete/{tail}.json"
        copied = sum(1 for line in by_run[tail] if line.get("status") == "copied")
        if summary_key not in ledger_keys:
            problems.append(f"unsettled: {tail} has manifest parts but no summary {summary_key}")
        else:
            summary = json.loads(_body(s3, bucket, summary_key))
            if summary.get("copied") != copied:
                problems.append(f"ledger: {summary_key} says copied {summary.get('copied')}, its manifest {copied}")
            named = {uri.split("/", 3)[3] for uri in summary.get("manifest_parts") or ()}
            if "manifest_parts" in summary and named != parts[tail]:
                problems.append(f"ledger: {summary_key} names {sorted(named)}, the bucket has {sorted(parts[tail])}")
        if copied and marker_key not in ledger_keys:
            problems.append(f"unsettled: {tail} landed {copied} objects but has no marker {marker_key}")
    return problems


def _state_garbage(s3: Any, bucket: str, ledger_prefix: str, ledger_keys: set[str]) -> list[str]:
    """After a clean exit, state/ holds the index and the parts it names, nothing else."""
    index_key = f"{ledger_prefix}state/index.json"
    if index_key not in ledger_keys:
        return []
    named = {p.get("part") for p in json.loads(_body(s3, bucket, index_key)).get("parts") or ()}
    left = sorted(
        k for k in ledger_keys if k.startswith(f"{ledger_prefix}state/") and k != index_key and k not in named
    )
    return [f"unsettled: {len(left)} state objects the index does not name, e.g. {left[0]}"] if left else []
