"""Our tool, run exactly as a user runs it: `python -m handler run ... --json`, one process per run."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import REPO, SOURCE_BUCKET, LedgerObjects, Sample, TmpWatch, Tool
from bench.workloads import DataSet


class Ours(Tool):
    name = "ours"
    concurrency = "32 copies (config default)"
    again = "ours, run again"

    def run(self, data: DataSet, target: str, *, incremental: bool) -> Sample:
        config = self.workdir / f"{target}.json"
        config.write_text(json.dumps(self.config(data, target)))
        # A fresh, private TMPDIR per run: whatever the run keeps in /tmp is what the sampler sees.
        # (A target may see many second runs: the no-op night re-runs over one target every round.)
        tmp = Path(tempfile.mkdtemp(prefix=f"tmp-{target}-{'again' if incremental else 'first'}-", dir=self.workdir))
        cmd = [sys.executable, "-m", "handler", "run", "--config", str(config), "--dataset", data.name]
        cmd += ["--endpoint-url", self.server.endpoint, "--json", *self.server.ours_flags]
        with TmpWatch(tmp) as watch:
            timed = self.timed(cmd, env=dict(self.env, TMPDIR=str(tmp)), cwd=REPO, watch=watch)
        summary = json.loads(timed.stdout)
        expected = ("nothing_new", 0) if incremental else ("succeeded", data.count)
        if (summary["status"], summary["copied"]) != expected:
            raise RuntimeError(
                f"ours on {self.server.name}: {summary['status']}, copied {summary['copied']}: {timed.stdout[:500]}"
            )
        self.expect(data, target, summary["copied"], incremental)
        ledger = LedgerObjects.listed(self.server.s3, target, data.name)
        return self.sample(
            timed,
            summary["copied"],
            incremental,
            tmp_named_peak_bytes=watch.peak_named,
            tmp_peak_bytes=watch.peak_total,
            peak_rss_bytes=watch.peak_rss,
            peak_rss_one_bytes=watch.peak_rss_one,
            run_seconds=summary.get("duration_seconds"),
            state_bytes=ledger.state_bytes,
            manifest_bytes=ledger.manifest_bytes,
        )

    def config(self, data: DataSet, target: str) -> dict[str, Any]:
        dataset: dict[str, Any] = {
            "source": {"bucket": SOURCE_BUCKET, "prefix": data.prefix},
            "target": {"bucket": target, "prefix": data.prefix},
        }
        if not self.server.upload_part_copy and data.largest >= default_multipart_threshold(data.name, dataset):
            # rclone serve s3 has no UploadPartCopy: every copy must stay a single CopyObject.
            dataset["multipart_threshold_bytes"] = data.largest + 1
        return {"datasets": {data.name: dataset}}


def default_multipart_threshold(name: str, dataset: dict[str, Any]) -> int:
    """The threshold our tool would use for this dataset config, from the tool's own config parser."""
    from handler.config import parse_config

    return parse_config({"datasets": {name: dataset}}).dataset(name).multipart_threshold_bytes


class OursBotocore(Ours):
    """Our tool with every request on botocore's road (INGEST_LEAN_REQUESTS=0, handler/store/lean.py): what the
    short road buys, measured in the same rounds."""

    name = "ours-botocore"
    again = "ours-botocore, run again"

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "INGEST_LEAN_REQUESTS": "0"}


class OursLineage(Ours):
    """Our tool with `source_metadata: lineage`: no HEAD of each source, one CopyObject an object (the landed
    object keeps our lineage and a Content-Type from its extension, not the source's headers and metadata).
    Not in the default tool list: it is an opt-in setting, measured beside the default when asked."""

    name = "ours-lineage"
    again = "ours-lineage, run again"

    def config(self, data: DataSet, target: str) -> dict[str, Any]:
        config = super().config(data, target)
        config["datasets"][data.name]["source_metadata"] = "lineage"
        return config
