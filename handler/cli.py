"""Command line: `python -m handler run|history|demo`. Exit codes are part of the interface.

0 succeeded or nothing new, 1 some objects (or the run) failed, 2 bad usage or config, 3 run in progress.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import date as Date
from typing import Any

from .clients import s3_client, sns_client
from .config import DatasetConfig, with_overrides
from .configfile import load_config
from .errors import ConditionalWritesUnsupported, ConfigError, IngestError, LockLost, RunInProgress
from .notify import build_notification, publish, publish_all
from .records import Failure, RunStatus, RunSummary, parse_utc, utc_now
from .runner import Engine, one_shot, one_shot_answer, run_date_for

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_IN_PROGRESS = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m handler", description="Land a dataset from S3 into the raw bucket."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="land what is new or changed (completing an interrupted run first)")
    _common(run)
    run.add_argument("--date", type=_date, help="the run's date (YYYY-MM-DD), to re-run or backfill a night")
    run.add_argument("--concurrency", type=_positive, help="parallel copies (overrides the config)")
    run.add_argument("--dry-run", action="store_true", help="show what would be copied and why; copy nothing")
    run.add_argument("--topic-arn", help="SNS topic for the run notification (default: config, then SNS_TOPIC_ARN)")
    run.add_argument(
        "--allow-unprotected",
        action="store_true",
        help="run even if the S3 endpoint ignores conditional writes (no protection against concurrent runs)",
    )

    history = commands.add_parser("history", help="list a dataset's runs, newest first")
    _common(history)
    history.add_argument("--limit", type=_positive, default=20, help="how many runs (default 20)")

    demo = commands.add_parser("demo", help="run the pipeline against an in-process local S3 and SNS (moto)")
    demo.add_argument("--source-dir", help="folder of files to ingest, e.g. a downloaded ml-latest-small")
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="process config: a local JSON file or s3://bucket/key")
    parser.add_argument("--dataset", required=True, help="dataset name in the config")
    parser.add_argument("--endpoint-url", help="S3 endpoint (default: AWS, or AWS_ENDPOINT_URL[_S3])")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _date(text: str) -> Date:
    try:
        return Date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date in YYYY-MM-DD form") from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    if args.command == "demo":
        from .demo import main as demo_main  # moto stays out of the Lambda's import path

        return demo_main(args.source_dir)
    try:
        return _run(args) if args.command == "run" else _history(args)
    except RunInProgress as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_IN_PROGRESS
    except (ConfigError, ConditionalWritesUnsupported) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (LockLost, IngestError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED


def _engine(args: argparse.Namespace, concurrency: int | None = None) -> tuple[Engine, Any]:
    bootstrap = s3_client(endpoint_url=args.endpoint_url)
    dataset = load_config(args.config, lambda: bootstrap).dataset(args.dataset)
    if concurrency is not None:
        dataset = with_overrides(dataset, concurrency=concurrency)
    s3 = s3_client(concurrency=dataset.concurrency, endpoint_url=args.endpoint_url)
    return Engine(s3, dataset, allow_unprotected=getattr(args, "allow_unprotected", False)), dataset


def _run(args: argparse.Namespace) -> int:
    engine, dataset = _engine(args, args.concurrency)
    if args.dry_run:
        result = engine.dry_run(args.date, out=(lambda line: print(line, file=sys.stderr)) if args.json else print)
        _print(result, args.json)
        return EXIT_OK
    topic = args.topic_arn or dataset.topic_arn or os.environ.get("SNS_TOPIC_ARN")
    started = utc_now()
    try:
        summaries = one_shot(engine.job, args.date, progress=_progress_printer())
    except (RunInProgress, ConfigError, ConditionalWritesUnsupported):
        raise
    except Exception as err:
        # The run itself broke (e.g. a bucket is missing): people still hear about it.
        failure = _failure_summary(dataset, args.date, started, err)
        if topic:
            publish(sns_client(), topic, build_notification(failure))
        print(f"error: run failed: {err}", file=sys.stderr)
        if args.json:
            print(json.dumps(failure.to_json()))
        return EXIT_FAILED
    _clear_progress()
    if topic:
        publish_all(sns_client(), topic, summaries)
    _print(one_shot_answer(summaries), args.json)
    return EXIT_FAILED if any(s.failing for s in summaries) else EXIT_OK


def _history(args: argparse.Namespace) -> int:
    engine, _ = _engine(args)
    runs = engine.history(args.limit)
    if args.json:
        print(json.dumps({"dataset": args.dataset, "runs": runs}))
        return EXIT_OK
    if not runs:
        print(f"no runs recorded for {args.dataset}")
    for run in runs:
        print(
            f"{run['run_id']}  {run['date']}  {run['status']:<11}  copied {run['copied']:>7}  "
            f"skipped {run['skipped']:>7}  failed {run['failed']:>5}  {run['bytes']:>12} bytes  {run['manifest']}"
        )
    return EXIT_OK


def _failure_summary(dataset: DatasetConfig, run_date: Date | None, started: str, err: Exception) -> RunSummary:
    """The run itself broke before it could commit: a summary that says so, for the notification and --json."""
    finished = utc_now()
    error = f"{type(err).__name__}: {err}"
    return RunSummary(
        dataset=dataset.name,
        run_id=None,
        date=(run_date or run_date_for(dataset)).isoformat(),
        status=RunStatus.FAILED,
        started_at=started,
        finished_at=finished,
        duration_seconds=(parse_utc(finished) - parse_utc(started)).total_seconds(),
        resumed=False,
        source=dataset.source.uri(),
        target=dataset.target.uri(),
        error=error,
        failures=(Failure("(whole run)", error),),
    )


def _print(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    width = max(len(k) for k in result)
    for key, value in result.items():
        if key in ("failures", "resumed_runs", "skipped_by_reason") and not value:
            continue
        print(f"{key:<{width}}  {json.dumps(value) if isinstance(value, (dict, list)) else value}")


def _progress_printer():
    if not sys.stderr.isatty():
        return None

    def show(objects: int, size: int) -> None:
        print(f"\r  {objects} objects, {size / 1048576:.1f} MiB", end="", file=sys.stderr, flush=True)

    return show


def _clear_progress() -> None:
    if sys.stderr.isatty():
        print(file=sys.stderr)
