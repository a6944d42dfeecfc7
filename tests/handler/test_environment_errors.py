"""The machine's failures read as what they are, wherever in an exception's chain the OS error sits.

tests/e2e/test_environment_failures.py makes each failure for real through the CLI; these check every form the
runtime can meet it in (a write's OSError, SQLite's "database or disk is full", a socket's EMFILE inside
botocore's EndpointConnectionError) and every wording of the advice.
"""

from __future__ import annotations

import errno
import signal
import sqlite3
import tempfile

import pytest
from botocore.exceptions import EndpointConnectionError
from urllib3.exceptions import NewConnectionError

from handler import cli
from handler.errors import (
    ScratchSpaceFull,
    TooManyOpenFiles,
    WorkerKilled,
    environment_error,
    open_file_limit,
)
from handler.store.errors import Transient, translate


def _raised_from(outer: Exception, inner: BaseException) -> Exception:
    try:
        try:
            raise inner
        except BaseException as err:
            raise outer from err
    except Exception as err:  # noqa: BLE001 - the chain is what is under test
        return err


def _socket_emfile() -> EndpointConnectionError:
    """What botocore raises when urllib3 cannot open a socket because the process has no descriptors left."""
    new_conn = _raised_from(
        NewConnectionError(None, "Failed to establish a new connection"), OSError(errno.EMFILE, "Too many open files")
    )
    return _raised_from(EndpointConnectionError(endpoint_url="http://s3", error=new_conn), new_conn)  # type: ignore[return-value]


# ---- a full TMPDIR ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "err",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        sqlite3.OperationalError("database or disk is full"),
        _raised_from(RuntimeError("finalize failed"), OSError(errno.ENOSPC, "No space left on device")),
    ],
)
def test_no_space_names_the_temporary_directory_and_what_to_do(err: BaseException) -> None:
    found = environment_error(err)

    assert isinstance(found, ScratchSpaceFull)
    assert found.directory == tempfile.gettempdir()
    assert str(found).startswith(f"no space left in the temporary directory {tempfile.gettempdir()} (ENOSPC")
    assert "point TMPDIR at a filesystem with room" in str(found)
    assert "raise the function's ephemeral storage" in str(found)  # Lambda's /tmp is 512 MB unless raised
    assert str(found).endswith("nothing that landed is lost, and the next run picks up where this one stopped")


def test_no_space_names_the_file_when_the_os_does_and_a_used_up_quota_too() -> None:
    found = environment_error(OSError(errno.ENOSPC, "No space left on device", "/tmp/ingest-x/plan.sqlite"))
    assert "(ENOSPC, writing /tmp/ingest-x/plan.sqlite)" in str(found)

    quota = environment_error(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert isinstance(quota, ScratchSpaceFull) and "EDQUOT: the disk quota is used up" in str(quota)


# ---- descriptors --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("err", [OSError(errno.EMFILE, "Too many open files"), _socket_emfile()])
def test_too_many_open_files_names_this_process_s_limit(err: BaseException) -> None:
    found = environment_error(err)

    soft, hard = open_file_limit()
    assert isinstance(found, TooManyOpenFiles) and (found.soft, found.hard) == (soft, hard)
    assert str(found).startswith("too many open files (EMFILE): ")
    assert f"RLIMIT_NOFILE soft {soft}, " in str(found)
    assert "lower --concurrency or --workers" in str(found)


@pytest.mark.parametrize(
    ("soft", "hard", "advice"),
    [
        (256, 1_048_576, "raise it before running (`ulimit -n 4096`)"),
        (2048, 4096, "raise it before running (`ulimit -n 4096`)"),
        (8192, None, "raise it before running (`ulimit -n 32768`)"),
        (1024, 1024, "that is the hard limit, which only root raises"),
    ],
)
def test_the_advice_says_how_far_the_limit_can_be_raised(soft: int, hard: int | None, advice: str) -> None:
    told = str(TooManyOpenFiles("EMFILE", soft, hard))

    assert advice in told
    assert f"hard {hard if hard is not None else 'unlimited'})" in told


def test_the_system_wide_table_is_told_apart_from_this_process_s_limit() -> None:
    found = environment_error(OSError(errno.ENFILE, "Too many open files in system"))

    assert isinstance(found, TooManyOpenFiles)
    assert "the system's open-file table is full (ENFILE)" in str(found)


def test_an_s3_request_that_could_not_open_a_socket_fails_naming_the_descriptors_not_the_endpoint() -> None:
    """The manifest's reason for each object that failed so: it used to be "Could not connect to the endpoint"."""
    err = translate(_socket_emfile())

    assert isinstance(err, Transient) and err.code == "TooManyOpenFiles"
    assert err.reason.startswith("too many open files (EMFILE): ")
    assert "endpoint" not in err.reason.lower()


def test_an_endpoint_that_is_really_unreachable_is_still_told_so() -> None:
    refused = _raised_from(NewConnectionError(None, "refused"), OSError(errno.ECONNREFUSED, "Connection refused"))
    err = translate(EndpointConnectionError(endpoint_url="http://s3", error=refused))

    assert err.code == "EndpointConnectionError"  # type: ignore[attr-defined]
    assert cli.refusal(err).error.endswith(
        "check --endpoint-url (or AWS_ENDPOINT_URL[_S3]) and that the server is up, then try again"
    )


# ---- killed workers -----------------------------------------------------------------------------------------------


def test_a_worker_killed_by_sigkill_points_at_the_oom_killer_and_says_the_run_resumes() -> None:
    told = str(WorkerKilled("copy_batch", signum=signal.SIGKILL, exitcode=None))

    assert told.startswith("a worker process was killed by SIGKILL (signal 9) during copy_batch: ")
    assert "most often the kernel's out-of-memory killer" in told
    assert "`dmesg`" in told and "lower --workers or --concurrency" in told
    assert told.endswith("the next run picks up where this one stopped")


@pytest.mark.parametrize(
    ("signum", "exitcode", "said"),
    [
        (signal.SIGSEGV, None, "killed by SIGSEGV (signal 11) during plan_shard: the Python interpreter crashed"),
        (signal.SIGTERM, None, "killed by SIGTERM (signal 15) during plan_shard: something on the machine stopped it"),
        (None, 70, "ended without answering (exit status 70) during plan_shard"),
        (None, None, "ended without answering during plan_shard"),
    ],
)
def test_other_deaths_are_named_too(signum: int | None, exitcode: int | None, said: str) -> None:
    assert said in str(WorkerKilled("plan_shard", signum=signum, exitcode=exitcode))


# ---- how the CLI presents them ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("err", "start"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "run failed: no space left in the temporary directory"),
        (sqlite3.OperationalError("database or disk is full"), "run failed: no space left in the temporary directory"),
        (OSError(errno.EMFILE, "Too many open files"), "run failed: too many open files (EMFILE)"),
        (translate(_socket_emfile()), "run failed: too many open files (EMFILE)"),
        (WorkerKilled("copy_batch", signum=9, exitcode=None), "run failed: a worker process was killed by SIGKILL"),
    ],
)
def test_the_cli_presents_them_as_a_failed_run_with_the_cause_not_as_a_bug(err: BaseException, start: str) -> None:
    refused = cli.refusal(err)

    assert (refused.status, refused.exit_code, refused.unexpected) == ("failed", cli.EXIT_FAILED, False)
    assert refused.error.startswith(start), refused.error


@pytest.mark.parametrize(
    "err",
    [OSError(errno.EACCES, "Permission denied"), sqlite3.OperationalError("no such table: planned"), KeyError("x")],
)
def test_other_errors_are_not_mistaken_for_the_machine_s(err: BaseException) -> None:
    assert environment_error(err) is None
    assert cli.refusal(err).unexpected
