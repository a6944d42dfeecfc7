"""What `--help` says after the options: the exit codes and a few examples, as aws-cli's and rclone's help do.

Kept apart from cli.py's parser so the text can grow without touching it; `add_epilogs` is called once the
parser is built. The exit codes are the ones cli.py's EXIT_* and `refusal` answer with (README, "Commands").
"""

from __future__ import annotations

import argparse

EXIT_CODES = """\
exit codes:
  0    succeeded, nothing new, verified clean (a dry run: nothing it knows of would fail)
  1    some objects or the run failed; verify or lineage found problems; S3 could not be reached; a dry run
       knows objects would fail
  2    bad usage, config, credentials or profile, or a question the ledger cannot answer (nothing copied)
  3    another run holds the dataset's lock (nothing copied)
  130  interrupted by Ctrl-C (SIGINT); 143 by SIGTERM: the lock is released, the next run completes the plan
  141  stdout's reader went away (`| head`): the output was cut, quietly, as any Unix tool's
"""

_CONFIG = "--config config.json --dataset movielens"
EXAMPLES = {
    None: [
        ("land what is new", f"%(prog)s run {_CONFIG}"),
        ("see what a run would copy, one JSON line an object", f"%(prog)s run {_CONFIG} --dry-run --json"),
        ("the last runs", f"%(prog)s history {_CONFIG} --limit 5"),
        (
            "against a local S3 with a named profile",
            f"%(prog)s --profile dev status {_CONFIG} --endpoint-url http://localhost:9000",
        ),
    ],
    "run": [
        ("land what is new", f"%(prog)s {_CONFIG}"),
        ("what would be copied, skipped or fail, and why", f"%(prog)s {_CONFIG} --dry-run"),
        ("the same as JSON Lines: one object a line, then the summary", f"%(prog)s {_CONFIG} --dry-run --json"),
        (
            "re-run a night, in another account's region",
            f"%(prog)s {_CONFIG} --date 2024-05-01 --profile prod --region $PROD_REGION",
        ),
    ],
    "history": [("the last five runs as JSON", f"%(prog)s {_CONFIG} --limit 5 --json")],
    "status": [("who holds the lock, and the run in progress", f"%(prog)s {_CONFIG}")],
    "verify": [
        ("check the last night", f"%(prog)s {_CONFIG}"),
        ("check one night with content checksums", f"%(prog)s {_CONFIG} --date 2024-05-01 --checksums"),
    ],
    "lineage": [
        ("where a landed object came from", "%(prog)s s3://$RAW_BUCKET/ml/ratings/ingest_date=2024-05-01/ratings.csv")
    ],
    "send-lineage": [
        ("send a night's events", f"%(prog)s {_CONFIG} --date 2024-05-01 --openlineage-url http://marquez:5000")
    ],
    "partitions": [
        ("register every committed night", f"%(prog)s {_CONFIG} --glue-database raw"),
        ("only nights from May on", f"%(prog)s {_CONFIG} --since 2024-05-01"),
    ],
    "demo": [("the pipeline on a downloaded MovieLens", "%(prog)s --source-dir ml-latest-small")],
}


def epilog(command: str | None) -> str:
    examples = "".join(f"  # {what}\n  {line}\n" for what, line in EXAMPLES.get(command, []))
    return (f"examples:\n{examples}\n" if examples else "") + EXIT_CODES


def add_epilogs(parser: argparse.ArgumentParser, commands: argparse._SubParsersAction) -> None:
    """Examples and exit codes under the top-level help and each command's, laid out as written."""
    for command, sub in [(None, parser), *commands.choices.items()]:
        sub.epilog = epilog(command)
        sub.formatter_class = argparse.RawDescriptionHelpFormatter
