"""Command line: `python -m handler run|history|status|verify|lineage|send-lineage|partitions|demo`. Exit codes are
part of the interface.

0 succeeded, nothing new, or verified clean; 1 some objects (or the run) failed, or verify found problems; 2 bad
usage, config or credentials, or a question the ledger cannot answer as asked (nothing copied); 3 run in progress
(nothing copied); 130 / 143 interrupted by Ctrl-C / SIGTERM (the lock is released; the next run completes what was
planned); 141 stdout's reader went away (`| head`), quietly, as Unix tools do (pipes.py).

Every outcome the CLI reaches is reported the same way, so scripts and people never meet a traceback: a command
that could not do its job prints one `error: ...` line on stderr (the traceback only with LOG_LEVEL=DEBUG), and
with --json stdout holds exactly one JSON object whatever happened (a dry run's: JSON Lines, each object it would
act on, then that one object last), errors and usage errors included:
`{"dataset", "status": "failed" | "invalid" | "in_progress" | "interrupted", "error", "exit_code"}` (README,
"Commands").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date as Date
from typing import Any, NoReturn

from . import __version__, interrupts, logs
from .aws_options import add_options as _aws_options
from .aws_options import applied
from .cli_help import add_epilogs
from .config import DatasetConfig, parse_run_date, with_overrides
from .configfile import load_config
from .errors import (
    ConditionalWritesUnsupported,
    ConfigError,
    ExtraMissing,
    IngestError,
    Interrupted,
    InvalidRequest,
    LineageDeliveryFailed,
    PartitionsFailed,
    RunInProgress,
    SdkTooOld,
    credentials_error,
    environment_error,
)
from .layout import printable
from .notify import announce
from .openlineage import ENDPOINT, Sent, deliver
from .partitions import GLUE_DATABASE_ENV, catalog_for
from .pipes import quiet_when_stdout_closes, reader_gone
from .pool import ClientSettings, LocalPool
from .progress import Meter, RunProgress, wanted
from .readable import completed_first, shown
from .records import Failure, OneShotAnswer, RunStatus, RunSummary, utc_now
from .runner import Engine, lineage_of, one_shot, run_date_for
from .status import DatasetStatus, HistoryEntry, RunningRun
from .steps.lineage import ObjectLineage
from .steps.partitions import repair
from .store import NoSuchBucket, Store, Transient
from .store.glue import glue_client
from .store.sdk import require_botocore, versions
from .store.topic import sns_client
from .verify import CLEAN, Kind, Problem, VerifyReport

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_IN_PROGRESS = 0, 1, 2, 3
OPENLINEAGE_URL, OPENLINEAGE_ENDPOINT, OPENLINEAGE_API_KEY = (
    "OPENLINEAGE_URL",
    "OPENLINEAGE_ENDPOINT",
    "OPENLINEAGE_API_KEY",
)
"""The variables OpenLineage's own clients read for their HTTP transport."""
READING_COMMANDS = frozenset({"history", "status", "verify", "lineage", "send-lineage", "partitions"})
FAILED, INVALID, IN_PROGRESS, INTERRUPTED = "failed", "invalid", "in_progress", "interrupted"
"""The `status` of an error answer: the run (or command) failed; the usage, config or credentials are wrong;
another run holds the lock. Run statuses (`succeeded`, `partial`, ...) are the summary's own."""

_UNREACHABLE = frozenset({"EndpointConnectionError", "ConnectTimeoutError", "ProxyConnectionError", "SSLError"})
"""Transient codes that mean the endpoint never answered, as opposed to answering with errors."""


class UsageError(Exception):
    """argparse's complaint, raised instead of exiting so that main answers it like every other error."""

    def __init__(self, message: str, usage: str):
        super().__init__(message)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.format_usage())


def _sdk_versions() -> str:
    """The SDK beside our own version: what a bug report needs, and what sdk.py checks."""
    return f"{versions()}, Python {sys.version.split()[0]}"


def build_parser() -> argparse.ArgumentParser:
    # `ingest` when run as the console script `pip install .` makes, `python -m handler` otherwise.
    prog = "ingest" if os.path.basename(sys.argv[0]) == "ingest" else "python -m handler"
    parser = _Parser(prog=prog, description="Land a dataset from S3 into the raw bucket.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__} ({_sdk_versions()})")
    _verbosity(parser, top=True)
    _aws_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="land what is new or changed (completing an interrupted run first)")
    _common(run)
    run.add_argument("--date", type=_date, help="the run's date (YYYY-MM-DD), to re-run or backfill a night")
    run.add_argument("--concurrency", type=_positive, help="parallel copies (overrides the config)")
    run.add_argument(
        "--workers",
        type=_positive,
        default=os.cpu_count() or 1,
        help="processes that plan, copy and finalize a run's shards and batches side by side, as the state "
        "machine's Maps do (default: the number of CPUs; 1 runs everything in this process)",
    )
    run.add_argument("--dry-run", action="store_true", help="show what would be copied and why; copy nothing")
    run.add_argument("--topic-arn", help="SNS topic for the run notification (default: config, then SNS_TOPIC_ARN)")
    _lineage_url(run, "after the run, send its OpenLineage events to this backend")
    _glue_database(run, "after the commit, register the night's partitions in this Glue database")
    run.add_argument(
        "--allow-unprotected",
        action="store_true",
        help="run even if the S3 endpoint ignores conditional writes (no protection against concurrent runs)",
    )

    history = commands.add_parser("history", help="list a dataset's runs, newest first (a run in progress first)")
    _common(history)
    history.add_argument("--limit", type=_positive, default=20, help="how many runs (default 20)")

    status = commands.add_parser(
        "status", help="who holds the lock and until when, a run in progress and how far it got, the last run"
    )
    _common(status)

    verify = commands.add_parser(
        "verify",
        help="check a night's ledger against the bucket: every copied object there with its size and lineage, "
        "every landed object in a manifest, the state in agreement; exit 1 listing what is wrong",
    )
    _common(verify)
    _night_or(
        verify, "the night to check, YYYY-MM-DD (default: the last run's)", "--run", help="check one committed run only"
    )
    verify.add_argument(
        "--checksums",
        action="store_true",
        help="also compare each copied object's content checksum (read by HEAD from S3's metadata, no data read) "
        "with the one its manifest line recorded",
    )

    lineage = commands.add_parser(
        "lineage", help="where a landed object came from (its lineage metadata) and the manifest line recording it"
    )
    lineage.add_argument("uri", metavar="s3://BUCKET/KEY", help="the landed object")
    lineage.add_argument("--endpoint-url", help="S3 endpoint (default: AWS, or AWS_ENDPOINT_URL[_S3])")
    lineage.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    _verbosity(lineage, top=False)
    _aws_options(lineage, top=False)

    send = commands.add_parser(
        "send-lineage",
        help="send the OpenLineage events the ledger holds for a night (or one run) to a lineage backend",
    )
    _common(send)
    _night_or(
        send,
        "the night whose runs to send, YYYY-MM-DD (default: the last run's)",
        "--run",
        help="send one committed run's events",
    )
    _lineage_url(send, "the backend to send them to")

    partitions = commands.add_parser(
        "partitions",
        help="register committed nights' partitions in the Glue catalog from the ledger (nights landed before "
        "registration, or after it failed); idempotent",
    )
    _common(partitions)
    since = "every committed night from this one on, YYYY-MM-DD"
    _night_or(partitions, "only this night, YYYY-MM-DD (default: every committed night)", "--since", help=since)
    _glue_database(partitions, "the Glue database holding the tables")

    demo = commands.add_parser("demo", help="run the pipeline against an in-process local S3 and SNS (moto)")
    demo.add_argument("--source-dir", help="folder of files to ingest, e.g. a downloaded ml-latest-small")
    _verbosity(demo, top=False)
    add_epilogs(parser, commands)
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="process config: a local JSON file or s3://bucket/key")
    parser.add_argument("--dataset", required=True, help="dataset name in the config")
    parser.add_argument("--endpoint-url", help="S3 endpoint (default: AWS, or AWS_ENDPOINT_URL[_S3])")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    _verbosity(parser, top=False)
    _aws_options(parser, top=False)


def _lineage_url(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--openlineage-url",
        default=os.environ.get(OPENLINEAGE_URL),
        metavar="URL",
        help=f"{what}, e.g. http://marquez:5000 (default: ${OPENLINEAGE_URL}; ${OPENLINEAGE_ENDPOINT} changes the "
        f"path from {ENDPOINT}, ${OPENLINEAGE_API_KEY} is sent as a bearer token)",
    )


def _night_or(parser: argparse.ArgumentParser, date_help: str, other: str, *, help: str) -> None:
    """`--date` or `other` (`--run RUN_ID`, `--since DATE`), not both: which nights a command is about."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--date", type=_date, help=date_help)
    if other == "--run":
        which.add_argument(other, dest="run_id", metavar="RUN_ID", help=help)
    else:
        which.add_argument(other, type=_date, help=help)


def _glue_database(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--glue-database",
        metavar="NAME",
        help=f"{what} (default: the dataset's glue_database, then ${GLUE_DATABASE_ENV}; none: no registration)",
    )


def _verbosity(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """-q / -v before the command or after it (`ingest -v run ...`, `ingest run -v ...`). A subcommand's copy
    defaults to nothing at all, so it never overwrites what was given before the command."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="print only errors (and verify's problems): no progress, no logged warnings, no summary of a run that "
        "succeeded",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0 if top else argparse.SUPPRESS,
        help="log each object a run copies, skips or fails, and what a command reads (-vv: debug)",
    )


def _date(text: str) -> Date:
    try:
        return parse_run_date(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date in YYYY-MM-DD form") from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


# ---- outcomes -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """A command that could not do its job: the status and exit code it answers with, and why (one line)."""

    status: str
    exit_code: int
    error: str
    problems: tuple[str, ...] = ()
    """Every problem of a config error, one line each (the `error` joins them)."""
    unexpected: bool = False
    """Not an error this package raises on purpose: a bug, or something the code does not yet explain."""

    def to_json(self, dataset: str | None) -> dict[str, Any]:
        answer = {"dataset": dataset, "status": self.status, "error": self.error, "exit_code": self.exit_code}
        return {**answer, "problems": list(self.problems)} if self.problems else answer


@dataclass
class Invocation:
    """One command line being answered: what the answer needs to know about it once it has failed."""

    args: argparse.Namespace
    dataset: DatasetConfig | None = None
    """Set once the config is loaded, so a missing bucket can be named."""
    doing: str = field(init=False)

    def __post_init__(self) -> None:
        dry = getattr(self.args, "dry_run", False)
        self.doing = "dry run" if dry else self.args.command

    @property
    def reads_only(self) -> bool:
        """A question about the ledger: it reads the target bucket only."""
        return self.doing in READING_COMMANDS

    @property
    def as_json(self) -> bool:
        return bool(getattr(self.args, "json", False))


def refusal(err: BaseException, invocation: Invocation | None = None) -> Refusal:
    """What a user is told about `err`: its status, exit code and a line naming what went wrong and what to do."""
    doing = invocation.doing if invocation else "run"
    if isinstance(err, RunInProgress):
        return Refusal(IN_PROGRESS, EXIT_IN_PROGRESS, str(err))
    if isinstance(err, Interrupted):
        return Refusal(INTERRUPTED, 128 + err.signum, str(err))
    if isinstance(err, ConfigError):
        return Refusal(INVALID, EXIT_USAGE, "invalid config: " + "; ".join(err.problems), tuple(err.problems))
    if isinstance(err, ConditionalWritesUnsupported | SdkTooOld | ExtraMissing | InvalidRequest):
        return Refusal(INVALID, EXIT_USAGE, str(err))
    if (credentials := credentials_error(err)) is not None:
        return Refusal(INVALID, EXIT_USAGE, str(credentials))
    if (local := environment_error(err)) is not None:  # the machine's disk or descriptors, not S3 nor a bug
        return Refusal(FAILED, EXIT_FAILED, f"{doing} failed: {local}")
    if isinstance(err, Transient):
        if err.code in _UNREACHABLE:
            advice = "check --endpoint-url (or AWS_ENDPOINT_URL[_S3]) and that the server is up, then try again"
        else:
            advice = "S3 kept failing after retries; try again later"
        return Refusal(FAILED, EXIT_FAILED, f"{doing} failed: {err}; {advice}")
    if isinstance(err, NoSuchBucket):
        return Refusal(FAILED, EXIT_FAILED, f"{doing} failed: {err}; {_bucket_advice(invocation)}")
    if isinstance(err, IngestError):
        return Refusal(FAILED, EXIT_FAILED, f"{doing} failed: {err}")
    return Refusal(FAILED, EXIT_FAILED, f"unexpected error: {type(err).__name__}: {err}", unexpected=True)


def _bucket_advice(invocation: Invocation | None) -> str:
    ds = invocation.dataset if invocation else None
    if invocation is not None and invocation.doing == "lineage":
        bucket = invocation.args.uri.removeprefix("s3://").partition("/")[0]
        return f"check the bucket name {bucket!r} and that --endpoint-url / AWS_REGION point where it is"
    if ds is None:
        return "check the bucket names in the config"
    if invocation is not None and invocation.reads_only:
        buckets = f"the target bucket {ds.target.bucket!r} exists"
    else:
        buckets = f"the source bucket {ds.source.bucket!r} and the target bucket {ds.target.bucket!r} exist"
    return f"check that {buckets} where --endpoint-url / AWS_REGION point"


def _report(refused: Refusal, dataset: str | None, as_json: bool, answer: dict[str, Any] | None = None) -> int:
    """Tell the user once: the `error:` line (a config's problems listed under it), and the one JSON object."""
    if refused.unexpected and _debugging():
        traceback.print_exc(file=sys.stderr)
    if len(refused.problems) > 1:
        print(f"error: invalid config ({len(refused.problems)} problems):", file=sys.stderr)
        for problem in refused.problems:
            print(f"  - {printable(problem)}", file=sys.stderr)
    else:
        hint = "; this is a bug: run again with LOG_LEVEL=DEBUG for the traceback" if refused.unexpected else ""
        print(f"error: {printable(refused.error)}{hint}", file=sys.stderr)
    if as_json:
        print(json.dumps({**(answer or {}), **refused.to_json(dataset)}))
    return refused.exit_code


def _debugging() -> bool:
    return os.environ.get("LOG_LEVEL", "").upper() == "DEBUG"


# ---- main -------------------------------------------------------------------------------------------------------


@quiet_when_stdout_closes
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logs.to_stderr()
    try:
        args = _parse(argv)
    except UsageError as err:
        print(err.usage, end="", file=sys.stderr)
        return _report(Refusal(INVALID, EXIT_USAGE, str(err)), _dataset_in(argv), _wants_json(argv))
    root, package = logging.getLogger(), logging.getLogger(logs.PACKAGE)
    levels = root.level, package.level
    root.setLevel(logs.level_for(args.quiet, os.environ.get("LOG_LEVEL")))
    package.setLevel(logs.package_level(args.verbose) or logging.NOTSET)
    invocation = Invocation(args)
    interrupts.stop_on_signals()  # SIGTERM and Ctrl-C unwind every step's clean-up (handler/interrupts.py)
    try:
        with applied(getattr(args, "profile", None), getattr(args, "region", None)):
            return _command(invocation)
    except Exception as err:  # the one place an unexplained error becomes an answer instead of a traceback
        if reader_gone(err):
            raise  # not an error: the reader had enough (`| head`), and main ends quietly (pipes.py)
        return _report(refusal(err, invocation), getattr(args, "dataset", None), invocation.as_json)
    finally:
        root.setLevel(levels[0])  # a caller's own logging (tests, `main` called in a process) is as it was
        package.setLevel(levels[1])


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quiet and args.verbose:
        raise UsageError("-q/--quiet and -v/--verbose cannot be used together", parser.format_usage())
    return args


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether a command line argparse refused asked for --json (argparse also takes `--js` and the like)."""
    words = argv[: argv.index("--")] if "--" in argv else argv
    return any(len(word) >= 3 and "--json".startswith(word) for word in words)


def _dataset_in(argv: Sequence[str]) -> str | None:
    for n, word in enumerate(argv):
        if word.startswith("--dataset="):
            return word.partition("=")[2]
        if word == "--dataset" and n + 1 < len(argv):
            return argv[n + 1]
    return None


def _command(invocation: Invocation) -> int:
    args = invocation.args
    require_botocore()  # before any request: an old botocore would refuse the conditional writes mid-run
    if args.command == "demo":
        from .demo import main as demo_main  # moto stays out of the Lambda's import path

        return demo_main(args.source_dir)
    commands: dict[str, Callable[[Invocation], int]] = {
        "history": _history,
        "status": _status,
        "verify": _verify,
        "lineage": _lineage,
        "send-lineage": _send_lineage,
        "partitions": _partitions,
    }
    if args.command in commands:
        return commands[args.command](invocation)
    return _dry_run(invocation) if args.dry_run else _run(invocation)


def _engine(invocation: Invocation, concurrency: int | None = None) -> Engine:
    args = invocation.args
    # Only a config in S3 needs a client to be read: a second client is a tenth of a second of a small run.
    dataset = load_config(args.config, lambda: Store.sized(endpoint_url=args.endpoint_url)).dataset(args.dataset)
    invocation.dataset = dataset
    if concurrency is not None:
        dataset = with_overrides(dataset, concurrency=concurrency)
    store = Store.sized(concurrency=dataset.concurrency, endpoint_url=args.endpoint_url)
    catalog = catalog_for(dataset, glue_client, getattr(args, "glue_database", None))
    return Engine(store, dataset, allow_unprotected=getattr(args, "allow_unprotected", False), catalog=catalog)


def _local_pool(engine: Engine, args: argparse.Namespace) -> LocalPool:
    settings = ClientSettings(concurrency=engine.dataset.concurrency, endpoint_url=args.endpoint_url)
    return LocalPool(
        engine.job,
        settings,
        args.workers,
        allow_unprotected=args.allow_unprotected,
        log_level=logging.getLogger(logs.PACKAGE).getEffectiveLevel(),
    )


def _dry_run(invocation: Invocation) -> int:
    """The plan, an object a line as it is found (JSON Lines under --json: each object, then the summary last),
    and exit 1 when it already knows objects would fail, as `rclone --dry-run` reports its errors."""
    args = invocation.args
    engine = _engine(invocation, args.concurrency)
    show = (lambda planned: print(json.dumps(planned.to_json()))) if args.json else None
    answer = engine.dry_run(args.date, show=show)
    _print(answer.to_json(), args.json)
    return EXIT_FAILED if answer.counts.failed_at_plan else EXIT_OK


def _run(invocation: Invocation) -> int:
    args = invocation.args
    engine = _engine(invocation, args.concurrency)
    dataset = engine.dataset
    topic = args.topic_arn or dataset.topic_arn
    started = utc_now()
    meter = Meter(sys.stderr) if wanted(sys.stderr.isatty(), args.quiet) else None
    progress: RunProgress | None = meter
    try:
        with _local_pool(engine, args) as workers:
            summaries = one_shot(engine.job, args.date, progress=progress, workers=workers)
    except Exception as err:
        if meter:
            meter.close()
        refused = refusal(err, invocation)
        if refused.exit_code != EXIT_FAILED:
            raise  # in progress, config or credentials: no run started, so there is no run to tell people about
        # The run itself broke (e.g. a bucket is missing): people still hear about it.
        failure = _failure_summary(dataset, args.date, started, refused.error)
        answer = {**failure.to_json(), **_notify(topic, [failure])}
        return _report(refused, dataset.name, args.json, answer)
    if meter:
        meter.close()
    engine.job.store.log_retries(f"run of {dataset.name}")  # this process's client (worker processes log their own)
    answer = {**OneShotAnswer(tuple(summaries)).to_json(), **_notify(topic, summaries)}
    if args.openlineage_url:
        answer.update(_send_events(engine, summaries, args.openlineage_url))
    failing = any(s.failing for s in summaries)
    if args.json or failing or not args.quiet:
        _print_run(answer, summaries, args.json)
    return EXIT_FAILED if failing else EXIT_OK


def _print_run(answer: dict[str, Any], summaries: list[RunSummary], as_json: bool) -> None:
    """A one-shot run's answer. A person reads the interrupted runs it completed first a line each, then its own
    run's fields; --json keeps them in `resumed_runs`."""
    if as_json:
        _print(answer, as_json)
        return
    for line in completed_first(summaries):
        print(line)
    _print({key: value for key, value in answer.items() if key != "resumed_runs"}, as_json)


def _notify(topic: str | None, summaries: list[RunSummary]) -> dict[str, str]:
    def warn(reason: str) -> None:
        print(
            f"warning: the notification was not sent ({printable(reason)}); the run itself is recorded, "
            "its outcome and exit code stand. Check the topic ARN, its region and the SNS endpoint",
            file=sys.stderr,
        )

    return announce(summaries, topic, sns_client, warn)


def _send_events(engine: Engine, summaries: list[RunSummary], url: str) -> dict[str, Any]:
    """Deliver the runs' lineage events after the run; like the notification, a failure is a warning and a field
    of the answer: the events stay in the ledger for `send-lineage`."""
    events = [e for s in summaries if s.run_id for e in engine.ledger.lineage_events(s.date, s.run_id)]
    try:
        return {"lineage_events_sent": _deliver(events, url)}
    except LineageDeliveryFailed as err:
        print(
            f"warning: the lineage events were not sent ({printable(str(err))}); they are in the ledger, and "
            "`send-lineage` sends them again",
            file=sys.stderr,
        )
        return {"lineage_error": str(err)}


def _deliver(events: list[dict[str, Any]], url: str) -> int:
    endpoint = os.environ.get(OPENLINEAGE_ENDPOINT) or ENDPOINT
    return deliver(events, url, endpoint=endpoint, api_key=os.environ.get(OPENLINEAGE_API_KEY) or None)


def _send_lineage(invocation: Invocation) -> int:
    args = invocation.args
    if not args.openlineage_url:
        raise InvalidRequest(f"no lineage backend: give --openlineage-url or set ${OPENLINEAGE_URL}")
    events = _engine(invocation).lineage_events(args.date, run_id=args.run_id)
    if not events:
        raise InvalidRequest(
            f"{args.dataset} has no lineage events for that night (runs committed before 0.10 have none)"
        )
    try:
        sent = _deliver(events, args.openlineage_url)
    except LineageDeliveryFailed as err:
        return _report(Refusal(FAILED, EXIT_FAILED, str(err)), args.dataset, args.json)
    if args.json or not args.quiet:
        _print(Sent.of(args.dataset, sent, events).to_json(), args.json)
    return EXIT_OK


def _partitions(invocation: Invocation) -> int:
    args = invocation.args
    engine = _engine(invocation)
    catalog = engine.job.catalog
    if catalog is None:
        raise InvalidRequest(
            f"no Glue database: give --glue-database, or set glue_database on dataset {args.dataset} "
            f"or ${GLUE_DATABASE_ENV}"
        )
    date, since = (d.isoformat() if d else None for d in (args.date, args.since))
    try:
        answer = repair(engine.job, catalog, date=date, since=since)
    except PartitionsFailed as err:
        return _report(
            Refusal(FAILED, EXIT_FAILED, f"{err}; what was registered stays, run it again"), args.dataset, args.json
        )
    if args.json or not args.quiet:
        _print(answer.to_json(), args.json)
    return EXIT_OK


def _history(invocation: Invocation) -> int:
    args = invocation.args
    runs = _engine(invocation).history(args.limit)
    if args.json:
        print(json.dumps({"dataset": args.dataset, "runs": [run.to_json() for run in runs]}))
        return EXIT_OK
    if not runs:
        print(f"no runs recorded for {args.dataset}")
    for run in runs:
        print(printable(_history_line(run)))
    return EXIT_OK


def _history_line(run: HistoryEntry) -> str:
    """One run a line: a committed run names its manifest, the run in progress says how far it got."""
    where = run.progress() if isinstance(run, RunningRun) else run.manifest
    done = run.tally
    return (
        f"{run.run_id}  {run.date}  {run.status:<11}  copied {done.copied:>7}  "
        f"skipped {done.skipped:>7}  failed {done.failed:>5}  {done.bytes:>12} bytes  {where}"
    )


def _status(invocation: Invocation) -> int:
    args = invocation.args
    answer = _engine(invocation).status()
    if args.json:
        print(json.dumps(answer.to_json()))
        return EXIT_OK
    for name, text in _status_rows(answer):
        print(printable(f"{name:<9} {text}"))
    return EXIT_OK


def _status_rows(answer: DatasetStatus) -> list[tuple[str, str]]:
    lock, run, last = answer.lock, answer.run, answer.last_run
    return [
        ("dataset", answer.dataset),
        ("lock", lock.line() if lock else "free (no run holds it)"),
        ("run", f"{run.run_id}  {run.date}  started {run.started_at}  {run.progress()}" if run else "none in progress"),
        (
            "last run",
            f"{last.run_id}  {last.date}  {last.status}  copied {last.copied}  skipped {last.skipped}  "
            f"failed {last.failed}  {last.bytes} bytes  finished {last.finished_at}"
            + (f"  last landed {last.last_landed_at}" if last.last_landed_at else "")
            + (f"  schema drift {last.schema_drift}" if last.schema_drift else "")
            if last
            else "none recorded",
        ),
    ]


def _verify(invocation: Invocation) -> int:
    args = invocation.args
    engine = _engine(invocation)

    def show(problem: Problem) -> None:
        print(printable(problem.line()), flush=True)

    report = engine.verify(
        args.date, run_id=args.run_id, on_problem=None if args.json else show, checksums=args.checksums
    )
    if args.json:
        print(json.dumps(report.to_json()))
    elif not args.quiet:
        print(printable(_verify_summary(report)))
    return EXIT_OK if report.status == CLEAN else EXIT_FAILED


def _verify_summary(report: VerifyReport) -> str:
    scope, checked, runs = report.scope, report.checked, report.runs
    which = f"run {scope.run_id}" if scope.run_id else f"{len(runs)} run{'s' if len(runs) != 1 else ''}"
    counted = (
        f"{checked.copied_lines} copied lines, {checked.objects_checked} objects checked under "
        f"{_listing(report.listing)}, {checked.state_checked} against the state"
    )
    if report.checksums:
        counted += f", {checked.checksums_checked} checksums compared"
        if checked.checksums_unrecorded:
            counted += f" ({checked.checksums_unrecorded} lines recorded none)"
    if report.problem_count:
        kinds = ", ".join(f"{n} {Kind(kind).label}" for kind, n in report.problems_by_kind.items())
        verdict = f"{report.problem_count} problems ({kinds})"
    else:
        verdict = "clean"
    notes = []
    if scope.in_progress:
        notes.append(
            f"run {scope.in_progress} is in progress: its {checked.in_progress_objects} objects are not checked"
        )
    if checked.foreign_objects:
        notes.append(f"{checked.foreign_objects} objects there are not this dataset's (ignored)")
    if checked.schema_drift:
        notes.append(
            f"{checked.schema_drift} copied objects differ from their table's declared columns (schema drift: "
            "landed or quarantined as their table's on_schema_drift says)"
        )
    tail = "".join(f"; {note}" for note in notes)
    return f"verify {scope.dataset} {scope.date} ({which}): {verdict}: {counted}{tail}"


def _listing(prefixes: Sequence[str]) -> str:
    return prefixes[0] if len(prefixes) == 1 else f"{len(prefixes)} prefixes ({prefixes[0]}, ...)"


def _lineage(invocation: Invocation) -> int:
    args = invocation.args
    answer = lineage_of(Store.sized(endpoint_url=args.endpoint_url), args.uri)
    if args.json:
        print(json.dumps(answer.to_json()))
    else:
        for name, text in _lineage_rows(answer):
            print(printable(f"{name:<9} {text}"))
    return EXIT_FAILED if answer.problems else EXIT_OK


def _lineage_rows(answer: ObjectLineage) -> list[tuple[str, str]]:
    found = answer.lineage
    rows = [
        ("object", f"{answer.uri}  {answer.size} bytes, ETag {answer.etag}"),
        ("source", f"{answer.source}  ETag {found.source_etag}"),
        ("dataset", found.dataset),
        ("run", f"{found.run_id}  date {found.date}  landed {found.ingested_at}"),
        (
            "manifest",
            answer.manifest_part or ("none yet: the run is in progress" if answer.run_in_progress else "none"),
        ),
    ]
    if answer.manifest_line is not None:
        rows.append(("line", json.dumps(answer.manifest_line, ensure_ascii=False)))
    return rows + [("problem", problem.line()) for problem in answer.problems]


def _failure_summary(dataset: DatasetConfig, run_date: Date | None, started: str, error: str) -> RunSummary:
    """The run itself broke before it could commit: a summary that says so, for the notification and --json."""
    return RunSummary.ended(
        dataset,
        run_id=None,
        date=(run_date or run_date_for(dataset)).isoformat(),
        status=RunStatus.FAILED,
        started_at=started,
        finished_at=utc_now(),
        resumed=False,
        error=error,
        failures=(Failure("(whole run)", error),),
    )


def _print(result: dict[str, Any], as_json: bool) -> None:
    """One JSON object, or `key  value` lines for a person (keys in it escaped, unicode kept readable, values in
    words: `resumed  no`, `marker  -`)."""
    if as_json:
        print(json.dumps(result))
        return
    width = max(len(k) for k in result)
    for key, value in result.items():
        if key in ("failures", "resumed_runs", "skipped_by_reason") and not value:
            continue
        if key == "failures":
            # One line per failure, as the notification lists them: a key is read as itself, not as JSON.
            print(f"{key:<{width}}  {len(value)} listed")
            for failure in value:
                print(f"  - {printable(failure['source_key'])}: {printable(failure['reason'])}")
            continue
        if key == "schema_drift_files":  # schema contracts: one line a drifted file, as the notification lists them
            print(f"{key:<{width}}  {len(value)} listed")
            for drifted in value:
                where = f" at {drifted['target_key']}" if drifted["status"] == "copied" else ""
                print(printable(f"  - {drifted['source_key']}: {drifted['drift']} ({drifted['status']}{where})"))
            continue
        print(f"{key:<{width}}  {printable(shown(value))}")
