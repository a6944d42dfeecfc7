"""Where a process config comes from: a local file, an `s3://bucket/key` URI, or the Lambda environment."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from .config import ProcessConfig, parse_config_text
from .errors import ConfigError, credentials_error
from .store import S3Error, Store, Transient

CONFIG_KEY_TEMPLATE = "config/{dataset}.json"
"""Where each dataset's config object lives in the config bucket: the stack writes there and sets CONFIG_KEY to
this template, braces included, and the runtime falls back to it, so the two cannot disagree."""


def split_s3_uri(uri: str) -> tuple[str, str]:
    rest = uri[len("s3://") :]
    bucket, _, key = rest.partition("/")
    if not bucket or not key:
        raise ConfigError(f"config location {uri!r} must look like s3://bucket/key.json")
    return bucket, key


def load_config(location: str, store_factory: Callable[[], Store]) -> ProcessConfig:
    """Read and validate a config; `store_factory` builds a store only when the location is in S3."""
    if location.startswith("s3://"):
        bucket, key = split_s3_uri(location)
        try:
            text = store_factory().get_bytes(bucket, key).decode("utf-8")
        except S3Error as err:
            raise _unreadable(location, err) from err
        except UnicodeDecodeError as err:
            raise ConfigError(_not_utf8(location, err)) from err
        return parse_config_text(text, origin=location)
    try:
        with open(location, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as err:
        raise ConfigError(f"cannot read config file {location!r}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(_not_utf8(location, err)) from err
    return parse_config_text(text, origin=location)


def _unreadable(location: str, err: S3Error) -> Exception:
    """Why an S3 config could not be read, as the error the caller must act on.

    A missing or forbidden object is the config's problem (fix it; retrying will not help). Credentials that do
    not work, or an endpoint that does not answer, are not: they keep their own kind (the state machine retries
    Transient, not ConfigError), with the location added to the message.
    """
    if (credentials := credentials_error(err)) is not None:
        return credentials
    if isinstance(err, Transient):
        return type(err)(f"cannot read config {location}: {err}", code=err.code, operation=err.operation, cause=err)
    return ConfigError(f"cannot read config {location}: {err.code}; check the bucket, key and permissions")


def _not_utf8(location: str, err: UnicodeDecodeError) -> str:
    return f"config {location} is not UTF-8 text (byte {err.start}: {err.reason}); save it as UTF-8"


def location_from_env(dataset: str, env: Mapping[str, str] | None = None) -> str:
    """CONFIG_PATH, or CONFIG_BUCKET + CONFIG_KEY (which may contain `{dataset}`: one object per dataset)."""
    env = os.environ if env is None else env
    if env.get("CONFIG_PATH"):
        return env["CONFIG_PATH"]
    bucket = env.get("CONFIG_BUCKET")
    if not bucket:
        raise ConfigError("no config location: set CONFIG_BUCKET (and CONFIG_KEY) or CONFIG_PATH")
    return f"s3://{bucket}/{config_key(dataset, env.get('CONFIG_KEY') or CONFIG_KEY_TEMPLATE)}"


def config_key(dataset: str, template: str = CONFIG_KEY_TEMPLATE) -> str:
    """The config object key of one dataset; a template without `{dataset}` is one object for all datasets."""
    return template.replace("{dataset}", dataset)
