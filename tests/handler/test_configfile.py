"""Where the config comes from: a local file, an s3:// object, or the Lambda's environment."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from handler.configfile import CONFIG_KEY_TEMPLATE, config_key, load_config, location_from_env, split_s3_uri
from handler.errors import ConfigError, CredentialsError
from handler.store import Store, Transient
from tests.conftest import config_document, dataset_config, new_bucket, unique_bucket, write_config


def no_s3() -> Any:
    raise AssertionError("a local config must not build an S3 client")


@pytest.fixture
def config_bucket(s3: Any) -> str:
    return new_bucket(s3, "config")


def document(name: str = "movielens") -> str:
    return config_document("source-bucket", "raw-bucket", name, timezone="Europe/Berlin")


# ---- local files ---------------------------------------------------------------------------------------------------


def test_local_file_is_read_and_validated(tmp_path: Path) -> None:
    path = write_config(tmp_path / "config.json", "source-bucket", "raw-bucket", exclude=["*.tmp"])

    config = load_config(str(path), no_s3)

    ds = config.dataset("movielens")
    assert ds == dataset_config("source-bucket", "raw-bucket", exclude=["*.tmp"])
    assert ds.exclude == ("*.tmp",)


def test_local_file_with_non_ascii_text_is_read_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "données.json"
    raw = json.loads(document())
    raw["datasets"]["movielens"]["source"]["prefix"] = "données/été/"
    path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")

    assert load_config(str(path), no_s3).dataset("movielens").source.prefix == "données/été/"


def test_missing_local_file_names_the_path_and_the_reason(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"

    with pytest.raises(ConfigError) as info:
        load_config(str(missing), no_s3)

    assert info.value.problems == [f"cannot read config file {str(missing)!r}: No such file or directory"]


def test_directory_instead_of_a_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file .*: Is a directory"):
        load_config(str(tmp_path), no_s3)


def test_invalid_json_file_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "datasets": {\n    "movielens": {\n  }\n')

    with pytest.raises(ConfigError) as info:
        load_config(str(path), no_s3)

    [message] = info.value.problems
    assert message.startswith(f"{path} is not valid JSON: ")
    assert message.endswith("at line 5 column 1")


def test_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    text = '{"datasets": {"movielens": {"source": {"prefix": "données"}}}}'.encode("latin-1")
    path.write_bytes(text)
    offset = text.index("é".encode("latin-1"))

    with pytest.raises(ConfigError) as info:
        load_config(str(path), no_s3)

    assert info.value.problems == [
        f"config {path} is not UTF-8 text (byte {offset}: invalid continuation byte); save it as UTF-8"
    ]
    assert isinstance(info.value.__cause__, UnicodeDecodeError)


def test_invalid_config_in_a_file_reports_its_problems(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"datasets": {"movielens": {"source": {"bucket": "source-bucket"}}}}))

    with pytest.raises(ConfigError) as info:
        load_config(str(path), no_s3)

    assert info.value.problems == ['datasets.movielens.target: missing; give {"bucket": ..., "prefix": ...}']


# ---- S3 ------------------------------------------------------------------------------------------------------------


def test_config_is_read_from_s3(s3: Any, config_bucket: str) -> None:
    s3.put_object(Bucket=config_bucket, Key="config/movielens.json", Body=document().encode())
    calls = []

    def factory() -> Any:
        calls.append(1)
        return Store(s3)

    config = load_config(f"s3://{config_bucket}/config/movielens.json", factory)

    assert config.dataset("movielens").timezone == "Europe/Berlin"
    assert calls == [1]


def test_config_under_a_non_ascii_key_is_read_from_s3(s3: Any, config_bucket: str) -> None:
    s3.put_object(Bucket=config_bucket, Key="cfg/données été.json", Body=document().encode())

    config = load_config(f"s3://{config_bucket}/cfg/données été.json", lambda: Store(s3))

    assert config.dataset("movielens").source.bucket == "source-bucket"


def test_missing_s3_key_names_the_location_and_error_code(s3: Any, config_bucket: str) -> None:
    location = f"s3://{config_bucket}/config/nope.json"

    with pytest.raises(ConfigError) as info:
        load_config(location, lambda: Store(s3))

    assert info.value.problems == [f"cannot read config {location}: NoSuchKey; check the bucket, key and permissions"]
    assert info.value.__cause__ is not None


def test_missing_s3_bucket_names_the_error_code(s3: Any) -> None:
    location = f"s3://{unique_bucket('absent')}/config.json"

    with pytest.raises(ConfigError, match=f"cannot read config {location}: NoSuchBucket"):
        load_config(location, lambda: Store(s3))


def test_invalid_json_in_s3_names_the_uri_line_and_column(s3: Any, config_bucket: str) -> None:
    s3.put_object(Bucket=config_bucket, Key="c.json", Body=b'{"datasets": {\n"a": ]}')

    with pytest.raises(ConfigError) as info:
        load_config(f"s3://{config_bucket}/c.json", lambda: Store(s3))

    [message] = info.value.problems
    assert message.startswith(f"s3://{config_bucket}/c.json is not valid JSON: ")
    assert message.endswith("at line 2 column 6")


def test_s3_object_that_is_not_utf8_is_a_config_error(s3: Any, config_bucket: str) -> None:
    s3.put_object(Bucket=config_bucket, Key="c.json", Body=b"\xff\xfe{}")

    with pytest.raises(ConfigError) as info:
        load_config(f"s3://{config_bucket}/c.json", lambda: Store(s3))

    assert info.value.problems == [
        f"config s3://{config_bucket}/c.json is not UTF-8 text (byte 0: invalid start byte); save it as UTF-8"
    ]


@pytest.mark.parametrize("uri", ["s3://", "s3://bucket", "s3://bucket/", "s3:///key.json"])
def test_s3_uri_without_bucket_or_key_is_refused_before_any_client_exists(uri: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(uri, no_s3)

    assert info.value.problems == [f"config location {uri!r} must look like s3://bucket/key.json"]


@pytest.mark.parametrize(
    ("uri", "parts"),
    [
        ("s3://b/k.json", ("b", "k.json")),
        ("s3://b/a/b/c.json", ("b", "a/b/c.json")),
        ("s3://b//k.json", ("b", "/k.json")),
        ("s3://b/données.json", ("b", "données.json")),
    ],
)
def test_s3_uri_splits_at_the_first_slash(uri: str, parts: tuple[str, str]) -> None:
    assert split_s3_uri(uri) == parts


# ---- environment ---------------------------------------------------------------------------------------------------


def test_config_path_wins_over_bucket_and_key() -> None:
    env = {"CONFIG_PATH": "/etc/ingest/config.json", "CONFIG_BUCKET": "cfg", "CONFIG_KEY": "x.json"}

    assert location_from_env("sales", env) == "/etc/ingest/config.json"


def test_config_path_may_itself_be_an_s3_uri() -> None:
    assert location_from_env("sales", {"CONFIG_PATH": "s3://cfg/all.json"}) == "s3://cfg/all.json"


@pytest.mark.parametrize(
    ("key", "location"),
    [
        ("config/{dataset}.json", "s3://cfg-bucket/config/sales.json"),
        ("{dataset}/{dataset}.json", "s3://cfg-bucket/sales/sales.json"),
        ("shared/config.json", "s3://cfg-bucket/shared/config.json"),
    ],
)
def test_bucket_and_key_give_an_s3_location_with_the_dataset_filled_in(key: str, location: str) -> None:
    assert location_from_env("sales", {"CONFIG_BUCKET": "cfg-bucket", "CONFIG_KEY": key}) == location


def test_key_defaults_to_one_object_per_dataset() -> None:
    assert location_from_env("sales", {"CONFIG_BUCKET": "cfg-bucket"}) == "s3://cfg-bucket/config/sales.json"


def test_default_key_is_the_template_the_stack_writes_to() -> None:
    assert CONFIG_KEY_TEMPLATE == "config/{dataset}.json"
    assert config_key("sales") == "config/sales.json"
    assert config_key("sales", "shared/config.json") == "shared/config.json"


def test_empty_config_key_falls_back_to_the_default_like_an_empty_config_path() -> None:
    # Regression: an empty CONFIG_KEY used to give the location s3://cfg-bucket/, refused as having no key.
    env = {"CONFIG_BUCKET": "cfg-bucket", "CONFIG_KEY": ""}

    assert location_from_env("sales", env) == "s3://cfg-bucket/config/sales.json"


def test_empty_config_path_falls_back_to_the_bucket() -> None:
    env = {"CONFIG_PATH": "", "CONFIG_BUCKET": "cfg-bucket"}

    assert location_from_env("sales", env) == "s3://cfg-bucket/config/sales.json"


@pytest.mark.parametrize("env", [{}, {"CONFIG_KEY": "config/{dataset}.json"}, {"CONFIG_BUCKET": "", "CONFIG_PATH": ""}])
def test_no_location_set_says_which_variables_to_set(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        location_from_env("sales", env)

    assert info.value.problems == ["no config location: set CONFIG_BUCKET (and CONFIG_KEY) or CONFIG_PATH"]


def test_process_environment_is_read_when_no_mapping_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="no config location"):
        location_from_env("sales")

    monkeypatch.setenv("CONFIG_BUCKET", "cfg-bucket")
    monkeypatch.setenv("CONFIG_KEY", "datasets/{dataset}/config.json")

    assert location_from_env("sales") == "s3://cfg-bucket/datasets/sales/config.json"


def test_environment_location_loads_the_dataset_from_s3(
    s3: Any, config_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put_object(Bucket=config_bucket, Key="config/ratings.json", Body=document("ratings").encode())
    monkeypatch.setenv("CONFIG_BUCKET", config_bucket)

    config = load_config(location_from_env("ratings"), lambda: Store(s3))

    assert config.dataset("ratings").name == "ratings"


def test_an_unreachable_endpoint_is_transient_not_a_config_error_and_names_the_location() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    client = boto3.client("s3", endpoint_url=endpoint, config=Config(retries={"max_attempts": 1}))

    with pytest.raises(Transient) as info:
        load_config("s3://config-bucket/config/movielens.json", lambda: Store(client))

    assert not isinstance(info.value, ConfigError), "the state machine must retry an endpoint that was down"
    assert str(info.value).startswith("cannot read config s3://config-bucket/config/movielens.json: ")
    assert endpoint in str(info.value)


def test_missing_credentials_for_an_s3_config_are_a_credentials_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    with pytest.raises(CredentialsError, match="no usable AWS credentials .*Unable to locate credentials"):
        load_config("s3://config-bucket/config/movielens.json", lambda: Store(boto3.session.Session().client("s3")))
