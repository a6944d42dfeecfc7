"""The keys of one dataset's ledger, `_ingestion/<dataset>/...` in its target bucket: the only place they are
spelt, and nothing else. No I/O and no store here, so the Glue tables (ledger_tables.py, which infra/ imports)
and anything else that only needs a key's name can have them without the ledger's S3 calls; handler/ledger.py
says what each key holds.

The keys are one table, `LedgerPaths`' class body: a name and a template relative to the ledger's root, each
rendered by `Key.render`. A key with no fields reads as a string (`paths.lock`); a template is called with its
fields by name (`paths.batch(run_id=..., batch=3)`), the same names a document of the ledger is read and
written with (`ledger.read(BATCH, run_id=..., batch=3)`). By name, never by position: a template's fields are
in the order its text has them, and a template reordered must not swap a caller's date and run id unseen."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from string import Formatter
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    from .config import DatasetConfig


class Key:
    """One key of the ledger: a `str.format` template relative to the ledger's root, and the fields it takes."""

    def __init__(self, template: str):
        self.template = template
        self.name = template
        self.fields = tuple(field for _, field, _, _ in Formatter().parse(template) if field)
        """The names the template is rendered with, in the order its text has them."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.template!r})"

    def render(self, root: str, **fields: Any) -> str:
        """The key under `root`. Exactly the template's fields: str.format would drop a misspelt one unseen."""
        if set(fields) != set(self.fields):
            raise TypeError(f"ledger key {self.name} takes {', '.join(self.fields) or 'no fields'}, not {fields}")
        return root + self.template.format(**fields)


class Fixed(Key):
    """A key with no fields: on a `LedgerPaths` it reads as the key itself."""

    def __init__(self, template: str):
        super().__init__(template)
        if self.fields:
            raise ValueError(f"{template!r} has fields: it is a Template")

    @overload
    def __get__(self, paths: None, owner: type) -> Fixed: ...
    @overload
    def __get__(self, paths: LedgerPaths, owner: type) -> str: ...
    def __get__(self, paths: LedgerPaths | None, owner: type) -> Fixed | str:
        return self if paths is None else self.render(paths.root)


class Template(Key):
    """A key with fields: on a `LedgerPaths` it is called with them by name."""

    def __init__(self, template: str):
        super().__init__(template)
        if not self.fields:
            raise ValueError(f"{template!r} has no fields: it is Fixed")

    @overload
    def __get__(self, paths: None, owner: type) -> Template: ...
    @overload
    def __get__(self, paths: LedgerPaths, owner: type) -> Callable[..., str]: ...
    def __get__(self, paths: LedgerPaths | None, owner: type) -> Template | Callable[..., str]:
        return self if paths is None else partial(self.render, paths.root)


class LedgerPaths:
    """Keys of one dataset's ledger in its target bucket: the only place they are spelt.

    Relative to the ledger's root (`_ingestion/<dataset>/`). A folder ends in `/` (or `-`, the prefix of a
    numbered run of keys); the keys listed under a folder are in it by their text."""

    lock = Fixed("lock.json")
    probe = Fixed("probe/")
    open_run = Fixed("open-run.json")
    last_run = Fixed("last-run.json")

    states = Fixed("state/")
    state_index = Fixed("state/index.json")
    legacy_state = Fixed("state/current.jsonl.gz")
    """The single-file state of versions before shards; read once, then migrated."""
    run_state_parts = Template("state/parts/{run_id}/")
    state_parts = Template("state/parts/{run_id}/{shard:05d}-")
    state_part = Template("state/parts/{run_id}/{shard:05d}-{piece:03d}.jsonl.gz")

    all_work = Fixed("work/")
    work = Template("work/{run_id}/")
    planning = Template("work/{run_id}/planning.json")
    report = Template("work/{run_id}/inventory.json")
    shard_list = Template("work/{run_id}/shards-{round:03d}.json")
    run_shard = Template("work/{run_id}/shards/{shard:05d}.json")
    plan_outcomes = Template("work/{run_id}/planned/")
    plan_outcome = Template("work/{run_id}/planned/{shard:05d}.json")
    plan_notes = Template("work/{run_id}/notes/{shard:05d}.jsonl")
    legacy_plan_notes = Template("work/{run_id}/plan.jsonl")
    """A run's plan notes from before shards: the notes of its one shard."""
    batch_index = Template("work/{run_id}/batches.json")
    batch = Template("work/{run_id}/batches/{batch:06d}.json")
    batch_started = Template("work/{run_id}/started/{batch:06d}")
    results = Template("work/{run_id}/results/")
    result = Template("work/{run_id}/results/{batch:06d}.jsonl")
    final_shards = Template("work/{run_id}/final-shards.json")
    shard_outcomes = Template("work/{run_id}/final/")
    shard_outcome = Template("work/{run_id}/final/{shard:05d}.json")

    manifests = Fixed("manifest/")
    manifest_folder = Template("manifest/date={date}/")
    """A date's folder of manifest parts (Hive-style `date=`, a partition of the catalog's manifest table)."""
    manifest_parts = Template("manifest/date={date}/{run_id}-")
    manifest_part = Template("manifest/date={date}/{run_id}-{shard:05d}.jsonl")
    manifest_glob = Template("manifest/date={date}/{run_id}-*.jsonl")
    legacy_manifest = Template("manifest/date={date}/{run_id}.jsonl")
    """A run's manifest from before parts: one file."""

    summaries = Fixed("summary/")
    summary_folder = Template("summary/date={date}/")
    summary = Template("summary/date={date}/{run_id}.json")
    markers = Fixed("complete/")
    marker = Template("complete/date={date}/{run_id}.json")
    lineage = Fixed("lineage/")
    lineage_event = Template("lineage/date={date}/{run_id}-{event}.json")
    """A run's OpenLineage START event (`event="start"`) or its COMPLETE/FAIL event (`event="end"`)."""

    def __init__(self, dataset: DatasetConfig):
        self.bucket = dataset.target.bucket
        self.root = dataset.ledger_prefix

    @classmethod
    def at(cls, bucket: str, root: str) -> LedgerPaths:
        """Paths under any root: the catalog renders its location templates with `${dataset}` as the name."""
        paths = cls.__new__(cls)
        paths.bucket, paths.root = bucket, root
        return paths

    @classmethod
    def keys(cls) -> Iterator[Key]:
        """Every key of the table, in the order it is written."""
        return (value for value in vars(cls).values() if isinstance(value, Key))

    def summary_run(self, key: str) -> tuple[str, str] | None:
        """(date, run id) of a summary key, or None for a key that is not one."""
        folder, _, name = key.removeprefix(self.summaries).partition("/")
        if not folder.startswith("date=") or not name.endswith(".json") or "/" in name:
            return None
        return folder.removeprefix("date="), name.removesuffix(".json")

    @staticmethod
    def unit(key: str) -> int | None:
        """The batch or shard number a work file is named by (`.../results/000012.jsonl` is 12)."""
        stem = key.rsplit("/", 1)[-1].split(".", 1)[0]
        return int(stem) if stem.isdigit() else None

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"
