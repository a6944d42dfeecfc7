"""`--profile` and `--region`, as aws-cli takes them: they reach every client the command makes, a profile that
does not exist is a usage error naming it, and the environment is as it was afterwards."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import boto3
import pytest

from handler.cli import EXIT_FAILED, EXIT_USAGE, main
from tests.conftest import one_json, write_config


@pytest.fixture
def profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A profile `team` with its own keys and region, in files of its own; no region in the environment."""
    (tmp_path / "aws-config").write_text("[profile team]\nregion = eu-west-2\n")
    (tmp_path / "aws-credentials").write_text("[team]\naws_access_key_id = TEAMKEY\naws_secret_access_key = s\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str | None, str]]:
    """Every client made: its service, region and access key."""
    made: list[tuple[str, str | None, str]] = []
    real = boto3.session.Session.client

    def client(self: boto3.session.Session, service: str, *args: Any, **kwargs: Any) -> Any:
        made.append((service, self.region_name, self.get_credentials().access_key))
        return real(self, service, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "client", client)
    return made


def status_of(tmp_path: Path, *options: str) -> list[str]:
    with socket.socket() as sock:  # a closed port: the command fails at its first request, after making its client
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = write_config(tmp_path / "config.json", "src-bucket", "raw-bucket")
    return ["status", "--config", str(config), "--dataset", "movielens", "--endpoint-url", endpoint, *options]


def test_the_profile_gives_every_client_its_keys_and_region_over_the_environments_keys(
    tmp_path: Path, profiles: None, clients: list[Any]
) -> None:
    before = dict(os.environ)

    assert main(["--profile", "team", *status_of(tmp_path)]) == EXIT_FAILED

    assert clients and all(region == "eu-west-2" and key == "TEAMKEY" for _, region, key in clients), clients
    assert dict(os.environ) == before  # the command's environment is undone (AWS_ACCESS_KEY_ID=testing is back)


def test_the_region_after_the_command_wins_over_the_profiles(
    tmp_path: Path, profiles: None, clients: list[Any]
) -> None:
    assert main(status_of(tmp_path, "--profile", "team", "--region", "ap-south-1")) == EXIT_FAILED

    assert clients and all(region == "ap-south-1" and key == "TEAMKEY" for _, region, key in clients), clients


def test_a_profile_that_does_not_exist_is_a_usage_error_naming_it(
    tmp_path: Path, profiles: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(status_of(tmp_path, "--profile", "nope", "--json"))

    out, err = capsys.readouterr()
    answer = one_json(out)
    assert code == EXIT_USAGE == answer["exit_code"]
    assert answer["status"] == "invalid"
    assert err.startswith("error: --profile 'nope': no such profile in ")
    assert str(tmp_path / "aws-config") in err
    assert "Traceback" not in err
    assert json.loads(out)["error"] in err
