"""The CLI's answers in-process: every outcome is one `error:` line (no traceback), the documented exit code,
and under --json exactly one JSON object on stdout, errors included."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from handler import cli
from handler.cli import EXIT_FAILED, EXIT_IN_PROGRESS, EXIT_OK, EXIT_USAGE, main
from handler.logs import PrintableFormatter
from handler.runner import new_run_id
from tests.conftest import REGION, landed_keys, ledger_in, one_json, write_config

ERROR_FIELDS = {"dataset", "status", "error", "exit_code"}


def error_line(stderr: str) -> str:
    """The one `error:` line, and no traceback anywhere."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def closed_port() -> int:
    """A local port nobody listens on: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def few_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused connection is retried ten times with backoff (half a minute); once is enough to see the answer."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")


@pytest.fixture
def config(tmp_path: Path, buckets: tuple[str, str]) -> Path:
    return write_config(tmp_path / "config.json", *buckets)


def run_args(config: Path | str, *extra: str, command: str = "run") -> list[str]:
    return [command, "--config", str(config), "--dataset", "movielens", *extra]


# ---- usage and config --------------------------------------------------------------------------------------------


def test_version_names_ours_and_the_sdk(capsys: pytest.CaptureFixture[str]) -> None:
    import botocore

    import handler

    with pytest.raises(SystemExit) as exited:
        main(["--version"])

    assert exited.value.code == 0
    assert capsys.readouterr().out == (
        f"python -m handler {handler.__version__} (boto3 {boto3.__version__}, botocore {botocore.__version__}, "
        f"Python {sys.version.split()[0]})\n"
    )


@pytest.mark.parametrize("value", ["5000", "1025"])
def test_concurrency_override_outside_the_config_range_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    config = write_config(tmp_path / "config.json", "some-source", "some-raw")

    code = main(["run", "--config", str(config), "--dataset", "movielens", "--concurrency", value])

    assert code == EXIT_USAGE
    assert f"concurrency: must be between 1 and 1024, got {value}" in capsys.readouterr().err


def test_concurrency_override_error_under_json_is_one_invalid_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "config.json", "some-source", "some-raw")

    code = main(run_args(config, "--concurrency", "5000", "--json"))

    out, err = capsys.readouterr()
    answer = one_json(out)
    assert code == EXIT_USAGE == answer["exit_code"]
    assert (answer["dataset"], answer["status"]) == ("movielens", "invalid")
    assert "concurrency: must be between 1 and 1024, got 5000" in answer["error"]
    assert error_line(err) == "error: invalid config: concurrency: must be between 1 and 1024, got 5000"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--config", "c.json", "--json"], "the following arguments are required: --dataset"),
        (["run", "--config", "c.json", "--dataset", "m", "--date", "2026-13-01", "--json"], "not a date"),
        (["history", "--dataset", "m", "--json", "--limit", "0"], "positive"),
        (["run", "--config", "c.json", "--dataset", "m", "--jso", "--nope"], "unrecognized arguments: --nope"),
        (["--json"], "the following arguments are required: command"),
    ],
)
def test_usage_error_under_json_is_one_invalid_object_and_the_usage_on_stderr(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    code = main(argv)

    out, err = capsys.readouterr()
    answer = one_json(out)
    assert code == EXIT_USAGE == answer["exit_code"]
    assert answer.keys() >= ERROR_FIELDS
    assert answer["status"] == "invalid"
    assert expected in answer["error"]
    assert "usage: python -m handler" in err
    assert expected in err


def test_usage_error_without_json_prints_nothing_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", "c.json"]) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""
    assert "the following arguments are required: --dataset" in err


def test_a_config_nested_100000_deep_is_a_config_error_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "deep.json"
    config.write_text("[" * 100_000 + "]" * 100_000)

    code = main(run_args(config, "--json"))

    out, err = capsys.readouterr()
    answer = one_json(out)
    assert code == EXIT_USAGE == answer["exit_code"]
    assert answer["status"] == "invalid"
    assert f"{config} nests arrays or objects too deeply" in answer["error"]
    assert f"{config} nests arrays or objects too deeply" in error_line(err)


def test_a_dataset_defined_twice_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = json.dumps({"source": {"bucket": "src-bucket"}, "target": {"bucket": "raw-bucket"}})
    config = tmp_path / "twice.json"
    config.write_text('{"datasets": {"movielens": ' + one + ', "movielens": ' + one + "}}")

    code = main(run_args(config, "--json"))

    out, err = capsys.readouterr()
    assert code == EXIT_USAGE
    assert "datasets.movielens is given twice" in one_json(out)["error"]
    assert "datasets.movielens is given twice" in error_line(err)


def test_several_config_problems_are_listed_one_a_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"datasets": {"movielens": {"source": {"bucket": "src-bucket"}, "concurency": 4}}}))

    code = main(run_args(config, "--json"))

    out, err = capsys.readouterr()
    answer = one_json(out)
    assert code == EXIT_USAGE
    assert answer["problems"] == [
        "datasets.movielens.concurency: unknown field; did you mean 'concurrency'?",
        'datasets.movielens.target: missing; give {"bucket": ..., "prefix": ...}',
    ]
    assert answer["error"] == "invalid config: " + "; ".join(answer["problems"])
    assert error_line(err) == "error: invalid config (2 problems):"
    assert "  - datasets.movielens.concurency: unknown field; did you mean 'concurrency'?" in err.splitlines()


# ---- the environment ---------------------------------------------------------------------------------------------


def test_an_aws_profile_that_does_not_exist_is_a_usage_error(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)

    code = main(run_args(config, "--json"))

    out, err = capsys.readouterr()
    answer = one_json(out)
    assert code == EXIT_USAGE == answer["exit_code"]
    assert answer["status"] == "invalid"
    line = error_line(err)
    assert "no usable AWS credentials" in line
    assert "no-such-profile" in line
    assert "AWS_PROFILE" in line


def test_missing_credentials_are_a_usage_error(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    code = main(run_args(config, "--dry-run", "--json"))

    out, err = capsys.readouterr()
    answer = one_json(out)
    assert code == EXIT_USAGE == answer["exit_code"]
    assert "no usable AWS credentials" in answer["error"]
    assert "Unable to locate credentials" in error_line(err)


def test_an_s3_config_behind_a_dead_endpoint_fails_naming_the_endpoint(
    few_retries: None, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"

    code = main(run_args("s3://config-bucket/config/movielens.json", "--endpoint-url", endpoint, "--json"))

    out, err = capsys.readouterr()
    answer = one_json(out)
    assert code == EXIT_FAILED == answer["exit_code"]
    assert answer["status"] == "failed"
    line = error_line(err)
    assert "cannot read config s3://config-bucket/config/movielens.json" in line
    assert endpoint in line
    assert "--endpoint-url" in line


# ---- runs that cannot do their job -------------------------------------------------------------------------------


def test_a_dry_run_over_a_missing_source_bucket_fails_naming_the_buckets(
    aws: None, buckets: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "config.json", "source-that-was-never-made", buckets[1])

    code = main(run_args(config, "--dry-run", "--json"))

    out, err = capsys.readouterr()
    answer = one_json(out)
    assert code == EXIT_FAILED == answer["exit_code"]
    assert (answer["dataset"], answer["status"]) == ("movielens", "failed")
    assert "NoSuchBucket" in answer["error"]
    assert "source-that-was-never-made" in error_line(err)


def test_history_of_a_missing_raw_bucket_fails_naming_it(
    aws: None, buckets: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "config.json", buckets[0], "raw-that-was-never-made")

    code = main(run_args(config, "--json", command="history"))

    out, err = capsys.readouterr()
    answer = one_json(out)
    assert code == EXIT_FAILED == answer["exit_code"]
    assert answer["status"] == "failed"
    assert "raw-that-was-never-made" in error_line(err)


def test_a_run_in_progress_under_json_is_one_in_progress_object(
    s3: Any, buckets: tuple[str, str], config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    holder = ledger_in(s3, buckets[1]).lock.acquire(new_run_id())

    code = main(run_args(config, "--json"))

    out, err = capsys.readouterr()
    answer = one_json(out)
    assert code == EXIT_IN_PROGRESS == answer["exit_code"]
    assert answer["status"] == "in_progress"
    assert holder.run_id in answer["error"]
    assert "in progress" in error_line(err)


def test_an_unexpected_error_is_one_line_exit_1_and_one_json_object(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("something nobody planned for")

    monkeypatch.setattr(cli, "load_config", broken)
    monkeypatch.delenv("LOG_LEVEL", raising=False)

    code = main(run_args(config, "--json"))

    out, err = capsys.readouterr()
    answer = one_json(out)
    assert code == EXIT_FAILED == answer["exit_code"]
    assert answer["status"] == "failed"
    assert answer["error"] == "unexpected error: TypeError: something nobody planned for"
    line = error_line(err)
    assert line.startswith("error: unexpected error: TypeError: something nobody planned for")
    assert "LOG_LEVEL=DEBUG" in line


def test_an_unexpected_error_shows_its_traceback_under_log_level_debug(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("something nobody planned for")

    monkeypatch.setattr(cli, "load_config", broken)
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")

    assert main(run_args(config)) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "TypeError: something nobody planned for" in err


# ---- the notification after a committed run --------------------------------------------------------------------


def test_a_topic_that_does_not_exist_warns_and_keeps_the_runs_answer(
    s3: Any, buckets: tuple[str, str], config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s3.put_object(Bucket=buckets[0], Key="movielens/a.csv", Body=b"a")
    topic = f"arn:aws:sns:{REGION}:123456789012:never-created"

    code = main(run_args(config, "--json", "--date", "2026-01-02", "--topic-arn", topic))

    out, err = capsys.readouterr()
    answer = one_json(out)
    assert code == EXIT_OK
    assert (answer["status"], answer["copied"]) == ("succeeded", 1)
    assert topic in answer["notification_error"]
    assert "Traceback" not in err
    [warning] = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert topic in warning
    assert "the run itself is recorded" in warning
    assert landed_keys(s3, buckets[1]) == ["movielens/ingest_date=2026-01-02/a.csv"]


def test_an_unreachable_sns_warns_and_keeps_the_runs_exit_code(
    s3: Any, buckets: tuple[str, str], config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    s3.put_object(Bucket=buckets[0], Key="movielens/a.csv", Body=b"a")
    endpoint = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setattr(
        cli,
        "sns_client",
        lambda: boto3.client("sns", endpoint_url=endpoint, config=Config(retries={"max_attempts": 1})),
    )

    code = main(run_args(config, "--date", "2026-01-02", "--topic-arn", f"arn:aws:sns:{REGION}:123456789012:t"))

    out, err = capsys.readouterr()
    assert code == EXIT_OK
    assert "succeeded" in out
    assert "Traceback" not in err
    [warning] = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert endpoint in warning
    assert landed_keys(s3, buckets[1]) == ["movielens/ingest_date=2026-01-02/a.csv"]


def test_log_lines_escape_what_they_quote(capsys: pytest.CaptureFixture[str]) -> None:
    record = logging.LogRecord("handler.copier", logging.WARNING, __file__, 1, "copy of %s failed", ("k\x1b[2J",), None)

    line = PrintableFormatter("%(levelname)s %(name)s: %(message)s").format(record)

    assert line == "WARNING handler.copier: copy of k\\x1b[2J failed"


# ---- -q and -v --------------------------------------------------------------------------------------------------


def test_quiet_before_the_command_and_verbose_after_it_is_a_usage_error(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["-q", *run_args(config, "-v", "--json")])

    out, err = capsys.readouterr()
    assert code == EXIT_USAGE == one_json(out)["exit_code"]
    assert "-q/--quiet and -v/--verbose cannot be used together" in error_line(err)


def test_quiet_keeps_the_summary_of_a_run_that_failed(
    s3: Any, buckets: tuple[str, str], config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s3.put_object(Bucket=buckets[0], Key="movielens/" + "k" * 1000 + ".csv", Body=b"too long a key to land")
    s3.put_object(Bucket=buckets[0], Key="movielens/ok.csv", Body=b"ok")

    code = main(run_args(config, "-q", "--date", "2026-01-02"))

    out, _ = capsys.readouterr()
    assert code == EXIT_FAILED
    assert "status" in out and "partial" in out
    assert "1024-byte limit" in out


def test_verbose_logs_each_object_and_leaves_the_callers_log_levels_as_they_were(
    s3: Any, buckets: tuple[str, str], config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s3.put_object(Bucket=buckets[0], Key="movielens/a.csv", Body=b"a")
    levels = logging.getLogger().level, logging.getLogger("handler").level

    assert main(run_args(config, "-v", "--date", "2026-01-02")) == EXIT_OK

    copied = [r.getMessage() for r in caplog.records if r.name == "handler.steps.copy"]
    assert copied == ["copied movielens/a.csv -> movielens/ingest_date=2026-01-02/a.csv"]
    assert (logging.getLogger().level, logging.getLogger("handler").level) == levels
