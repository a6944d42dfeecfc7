"""The botocore check: an old SDK is one clear error before anything is done, in the CLI and at a Lambda's cold
start; the minimum is what the S3 model needs (docs/deploy.md says how it was found)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import botocore
import botocore.session
import pytest

from handler.cli import EXIT_USAGE, main
from handler.errors import SdkTooOld
from handler.store import sdk
from tests.conftest import landed_keys, one_json, write_config
from tests.handler.test_cli import run_args


@pytest.mark.parametrize("version", ["1.40.61", "1.40.62", "1.41.0", "1.44.8", "2.0.0", "1.40.61.dev0", "1.40.61rc1"])
def test_the_minimum_and_anything_newer_pass(version: str) -> None:
    sdk.check_botocore(version)


@pytest.mark.parametrize("version", ["1.40.60", "1.36.0", "1.35.99", "1.34.162", "0.109.0"])
def test_anything_older_is_refused_naming_both_versions_and_what_to_do(version: str) -> None:
    with pytest.raises(SdkTooOld) as refused:
        sdk.check_botocore(version)

    message = str(refused.value)
    assert f"botocore {version} is too old" in message
    assert "1.40.61 or later" in message
    assert "layer" in message and "pip install 'botocore>=1.40.61'" in message


def test_a_version_that_does_not_parse_is_let_through() -> None:
    sdk.check_botocore("unknown")
    assert sdk.parse_version("unknown") is None
    assert sdk.parse_version(" 1.40.61\n") == (1, 40, 61)


def test_the_installed_botocore_has_every_parameter_the_minimum_stands_for() -> None:
    """The pinned botocore passes the check, and its S3 model has the parameters sdk.py names: if a future pin
    dropped one, this fails rather than a night's first conditional write."""
    sdk.require_botocore()
    model = botocore.session.get_session().get_service_model("s3")
    needed = {
        "PutObject": {"IfMatch", "IfNoneMatch"},
        "CompleteMultipartUpload": {"IfNoneMatch"},
        "DeleteObject": {"IfMatch"},
        "CopyObject": {"IfNoneMatch", "CopySourceIfMatch"},
    }
    for operation, members in needed.items():
        assert members <= set(model.operation_model(operation).input_shape.members), operation


def test_the_cli_refuses_an_old_botocore_before_any_request(
    s3: Any,
    buckets: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path / "config.json", *buckets)
    monkeypatch.setattr(botocore, "__version__", "1.35.0")

    code = main(run_args(config, "--json"))

    out, err = capsys.readouterr()
    answer = one_json(out)
    assert code == EXIT_USAGE == answer["exit_code"]
    assert answer["status"] == "invalid"
    assert "botocore 1.35.0 is too old" in answer["error"]
    assert "Traceback" not in err
    assert landed_keys(s3, buckets[1]) == []


def test_a_lambda_invocation_on_an_old_botocore_fails_with_the_check_before_any_request(
    s3: Any, buckets: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first invocation after a cold start (and every later one) checks the runtime's botocore before it
    reads its config; the state machine does not retry the error."""
    from handler import lambda_function
    from infra.workflow_definition import NOT_RETRYABLE_ERRORS

    config = write_config(tmp_path / "config.json", *buckets)
    monkeypatch.setenv("CONFIG_PATH", str(config))
    monkeypatch.setattr(botocore, "__version__", "1.38.46")

    with pytest.raises(SdkTooOld, match="botocore 1.38.46 is too old"):
        lambda_function.handler({"dataset": "movielens"})
    assert landed_keys(s3, buckets[1]) == []
    assert "SdkTooOld" in NOT_RETRYABLE_ERRORS
