"""checkov on the transcribed stack, held to docs/policy.md's table of findings (`make checkov`).

checkov runs in its own virtualenv (`.venv-checkov`, from the pins in .ci/checkov/requirements.txt: its
dependency pins clash with the project's), offline (`--skip-download`, no API key), on the CloudFormation
template tests/infra/cfn_transcript.py writes for the dev stack. Every failed check must be a row of the
table in docs/policy.md (check id, Pulumi resource name, status, why), and every row must still fail: the
table is the single list of what checkov reports, so it cannot go stale in either direction.

`python -m tests.infra.checkov_review` does all of it and exits non-zero on any difference.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.infra.cfn_transcript import dev_deployment, pulumi_names, transcribe
from tests.infra.harness import ROOT

CHECKOV_VENV = Path(os.environ.get("CHECKOV_VENV", ROOT / ".venv-checkov"))
CHECKOV = CHECKOV_VENV / "bin" / "checkov"
POLICY_DOC = ROOT / "docs" / "policy.md"
BUILD_DIR = ROOT / "build" / "checkov"
TABLE_START = "<!-- checkov-findings:start -->"
TABLE_END = "<!-- checkov-findings:end -->"
STATUSES = ("n/a", "open")
"""n/a: the check does not apply to this stack (the row says why); open: a finding still to be fixed."""


@dataclass(frozen=True)
class Finding:
    """One failed check on one resource: the check id and the Pulumi name of the resource."""

    check: str
    resource: str


@dataclass(frozen=True)
class Documented:
    """One row of docs/policy.md's table."""

    finding: Finding
    status: str
    why: str


def documented_findings(text: str | None = None) -> list[Documented]:
    """The rows of the table between the checkov-findings markers in docs/policy.md."""
    text = POLICY_DOC.read_text() if text is None else text
    if TABLE_START not in text or TABLE_END not in text:
        raise ValueError(f"{POLICY_DOC.name} has no table between {TABLE_START} and {TABLE_END}")
    block = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    rows = [line.strip() for line in block.splitlines() if line.strip().startswith("|")]
    if len(rows) < 2 or [c.strip() for c in rows[0].strip("|").split("|")] != ["Check", "Resource", "Status", "Why"]:
        raise ValueError("the checkov table's header must be | Check | Resource | Status | Why |")
    found = []
    for row in rows[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        if len(cells) != 4:
            raise ValueError(f"a checkov table row needs 4 cells: {row}")
        check, resource, status, why = (re.sub(r"^`(.*)`$", r"\1", c) for c in cells)
        if status not in STATUSES:
            raise ValueError(f"status {status!r} in row {row}: one of {', '.join(STATUSES)}")
        if not why:
            raise ValueError(f"row {row} says no why")
        found.append(Documented(Finding(check, resource), status, why))
    return found


def run_checkov(template: Path) -> dict[str, Any]:
    """checkov's JSON report on one CloudFormation template (offline: nothing downloaded, no API key)."""
    if not CHECKOV.exists():
        raise FileNotFoundError(f"{CHECKOV} is missing: `make checkov` builds it from .ci/checkov/requirements.txt")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_", "CKV_"))}
    result = subprocess.run(
        [
            str(CHECKOV),
            "--file",
            str(template),
            "--framework",
            "cloudformation",
            "--output",
            "json",
            "--skip-download",
            "--soft-fail",  # exit 0 on findings: the table decides, below
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"checkov failed ({result.returncode}):\n{result.stderr[-4000:]}")
    report = json.loads(result.stdout)
    if isinstance(report, list):  # one entry per framework when several ran
        (report,) = [r for r in report if r.get("check_type") == "cloudformation"]
    if report.get("summary", {}).get("parsing_errors"):
        raise RuntimeError(f"checkov could not parse {template}: {report['results'].get('parsing_errors')}")
    return report


def failed_findings(report: dict[str, Any], names: dict[str, str]) -> set[Finding]:
    """Each failed check as a Finding, its resource named as in the program (`AWS::S3::Bucket.X` -> X's name)."""
    found = set()
    for check in report["results"]["failed_checks"]:
        logical = check["resource"].split(".", 1)[1]
        found.add(Finding(check["check_id"], names.get(logical, logical)))
    return found


@dataclass
class Review:
    report: dict[str, Any]
    found: set[Finding]
    documented: list[Documented]

    @property
    def undocumented(self) -> list[Finding]:
        listed = {d.finding for d in self.documented}
        return sorted(self.found - listed, key=lambda f: (f.check, f.resource))

    @property
    def stale(self) -> list[Documented]:
        return [d for d in self.documented if d.finding not in self.found]

    def problems(self) -> list[str]:
        names = {c["check_id"]: c["check_name"] for c in self.report["results"]["failed_checks"]}
        return [
            f"checkov reports {f.check} ({names.get(f.check, '')}) on {f.resource}, which docs/policy.md's table "
            "does not list: fix the resource, or add a row saying why the check does not apply"
            for f in self.undocumented
        ] + [
            f"docs/policy.md lists {d.finding.check} on {d.finding.resource} ({d.status}), which checkov no longer "
            "reports: remove the row"
            for d in self.stale
        ]


def review(out_dir: Path = BUILD_DIR) -> Review:
    """Transcribe the dev stack, run checkov on it, and hold the result against docs/policy.md's table."""
    deployment = dev_deployment()
    template = transcribe(deployment)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "template.json"
    path.write_text(json.dumps(template, indent=2, sort_keys=True) + "\n")
    report = run_checkov(path)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return Review(report, failed_findings(report, pulumi_names(template, deployment)), documented_findings())


def main() -> int:
    result = review()
    summary = result.report["summary"]
    print(
        f"checkov {summary['checkov_version']}: {summary['resource_count']} resources, {summary['passed']} passed, "
        f"{summary['failed']} failed (template and report in {BUILD_DIR.relative_to(ROOT)}/)"
    )
    for d in result.documented:
        state = "still reported" if d.finding in result.found else "NOT REPORTED"
        print(f"  {d.status:4} {d.finding.check} {d.finding.resource}: {state}")
    problems = result.problems()
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    if result.undocumented:
        names = {c["check_id"]: c["check_name"] for c in result.report["results"]["failed_checks"]}
        print("Rows for the new findings, once each is understood (fix it, or say why it does not apply):")
        for f in result.undocumented:
            print(f"| `{f.check}` | `{f.resource}` | open | {names.get(f.check, '')} |")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
