"""The keys of one dataset's ledger, `_ingestion/<dataset>/...` in its target bucket: the only place they are
spelt, and nothing else. No I/O and no store here, so the Glue tables (ledger_tables.py, which infra/ imports)
and anything else that only needs a key's name can have them without the ledger's S3 calls; handler/ledger.py
says what each key holds."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import DatasetConfig


class LedgerPaths:
    """Keys of one dataset's ledger in its target bucket: the only place they are spelt."""

    def __init__(self, dataset: DatasetConfig):
        self.bucket = dataset.target.bucket
        self.root = dataset.ledger_prefix

    @classmethod
    def at(cls, bucket: str, root: str) -> LedgerPaths:
        """Paths under any root: the catalog renders its location templates with `${dataset}` as the name."""
        paths = cls.__new__(cls)
        paths.bucket, paths.root = bucket, root
        return paths

    @property
    def lock(self) -> str:
        return self.root + "lock.json"

    @property
    def probe(self) -> str:
        return self.root + "probe/"

    @property
    def open_run(self) -> str:
        return self.root + "open-run.json"

    @property
    def last_run(self) -> str:
        return self.root + "last-run.json"

    @property
    def states(self) -> str:
        return self.root + "state/"

    @property
    def state_index(self) -> str:
        return self.root + "state/index.json"

    @property
    def legacy_state(self) -> str:
        """The single-file state of versions before shards; read once, then migrated."""
        return self.root + "state/current.jsonl.gz"

    def state_parts(self, run_id: str, shard: int) -> str:
        return f"{self.root}state/parts/{run_id}/{shard:05d}-"

    def state_part(self, run_id: str, shard: int, piece: int) -> str:
        return f"{self.state_parts(run_id, shard)}{piece:03d}.jsonl.gz"

    @property
    def manifests(self) -> str:
        return self.root + "manifest/"

    @property
    def summaries(self) -> str:
        return self.root + "summary/"

    @property
    def markers(self) -> str:
        return self.root + "complete/"

    @property
    def lineage(self) -> str:
        return self.root + "lineage/"

    def lineage_event(self, date: str, run_id: str, end: bool) -> str:
        """A run's OpenLineage START event (`-start.json`) or its COMPLETE/FAIL event (`-end.json`)."""
        return f"{self.lineage}date={date}/{run_id}-{'end' if end else 'start'}.json"

    @property
    def all_work(self) -> str:
        return self.root + "work/"

    def work(self, run_id: str) -> str:
        return f"{self.all_work}{run_id}/"

    def batch_index(self, run_id: str) -> str:
        return self.work(run_id) + "batches.json"

    def batch(self, run_id: str, number: int) -> str:
        return f"{self.work(run_id)}batches/{number:06d}.json"

    def batch_started(self, run_id: str, number: int) -> str:
        return f"{self.work(run_id)}started/{number:06d}"

    def result(self, run_id: str, number: int) -> str:
        return f"{self.work(run_id)}results/{number:06d}.jsonl"

    def planning(self, run_id: str) -> str:
        return self.work(run_id) + "planning.json"

    def report(self, run_id: str) -> str:
        return self.work(run_id) + "inventory.json"

    def run_shard(self, run_id: str, shard: int) -> str:
        return f"{self.work(run_id)}shards/{shard:05d}.json"

    def shard_list(self, run_id: str, round_: int) -> str:
        return f"{self.work(run_id)}shards-{round_:03d}.json"

    def plan_outcome(self, run_id: str, shard: int) -> str:
        return f"{self.work(run_id)}planned/{shard:05d}.json"

    def plan_notes(self, run_id: str, shard: int) -> str:
        return f"{self.work(run_id)}notes/{shard:05d}.jsonl"

    def legacy_plan_notes(self, run_id: str) -> str:
        return self.work(run_id) + "plan.jsonl"

    def final_shards(self, run_id: str) -> str:
        return self.work(run_id) + "final-shards.json"

    def shard_outcome(self, run_id: str, shard: int) -> str:
        return f"{self.work(run_id)}final/{shard:05d}.json"

    def manifest_folder(self, date: str) -> str:
        """A date's folder of manifest parts (Hive-style `date=`, a partition of the catalog's manifest table)."""
        return f"{self.manifests}date={date}/"

    def manifest_part(self, date: str, run_id: str, shard: int) -> str:
        return f"{self.manifest_folder(date)}{run_id}-{shard:05d}.jsonl"

    def manifest_glob(self, date: str, run_id: str) -> str:
        return f"{self.manifest_folder(date)}{run_id}-*.jsonl"

    def summary_folder(self, date: str) -> str:
        return f"{self.summaries}date={date}/"

    def summary(self, date: str, run_id: str) -> str:
        return f"{self.summary_folder(date)}{run_id}.json"

    def summary_run(self, key: str) -> tuple[str, str] | None:
        """(date, run id) of a summary key, or None for a key that is not one."""
        folder, _, name = key.removeprefix(self.summaries).partition("/")
        if not folder.startswith("date=") or not name.endswith(".json") or "/" in name:
            return None
        return folder.removeprefix("date="), name.removesuffix(".json")

    def results(self, run_id: str) -> str:
        return f"{self.work(run_id)}results/"

    def plan_outcomes(self, run_id: str) -> str:
        return f"{self.work(run_id)}planned/"

    def shard_outcomes(self, run_id: str) -> str:
        return f"{self.work(run_id)}final/"

    @staticmethod
    def unit(key: str) -> int | None:
        """The batch or shard number a work file is named by (`.../results/000012.jsonl` is 12)."""
        stem = key.rsplit("/", 1)[-1].split(".", 1)[0]
        return int(stem) if stem.isdigit() else None

    def marker(self, date: str, run_id: str) -> str:
        return f"{self.markers}date={date}/{run_id}.json"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"
