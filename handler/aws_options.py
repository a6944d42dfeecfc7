"""`--profile` and `--region`, as aws-cli takes them: which named profile's credentials and region every AWS
client of the command uses (S3, SNS, Glue, and the clients of the local pool's worker processes).

They are applied as the environment boto3 reads (AWS_PROFILE, AWS_DEFAULT_REGION, AWS_REGION) for the length of
the command, so every client, whichever module or process makes it, sees them without each being handed a
session; the environment is restored afterwards. As with aws-cli, an explicit `--profile` wins over credentials
in the environment (AWS_ACCESS_KEY_ID and the like are set aside while it runs), and `--region` over
AWS_REGION and the profile's region.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager

import boto3

from .errors import InvalidRequest

PROFILE_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")
REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")
KEY_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
"""Credentials in the environment, which botocore would otherwise prefer to the named profile's."""


def add_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--profile / --region before the command or after it; a subcommand's copy defaults to nothing at all, so it
    never overwrites what was given before the command."""
    default = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--profile",
        default=default,
        metavar="NAME",
        help="the named profile of ~/.aws/config and ~/.aws/credentials every AWS client uses (default: "
        "$AWS_PROFILE, then the default chain)",
    )
    parser.add_argument(
        "--region", default=default, metavar="REGION", help="the AWS region (default: $AWS_REGION, then the profile's)"
    )


@contextmanager
def applied(profile: str | None, region: str | None) -> Iterator[None]:
    """The command's environment with `profile` and `region` in it (a profile that does not exist is refused
    first, naming it); as it was afterwards."""
    if profile is not None:
        _require_profile(profile)
    wanted: dict[str, str | None] = {}
    if profile is not None:
        wanted.update(dict.fromkeys(PROFILE_VARIABLES, profile), **dict.fromkeys(KEY_VARIABLES))
    if region is not None:
        wanted.update(dict.fromkeys(REGION_VARIABLES, region))
    before = {name: os.environ.get(name) for name in wanted}
    _set(wanted)
    try:
        yield
    finally:
        _set(before)


def _require_profile(profile: str) -> None:
    try:
        boto3.session.Session(profile_name=profile)
    except Exception as err:  # botocore's ProfileNotFound, read by name: no botocore outside handler/store
        if type(err).__name__ != "ProfileNotFound":
            raise
        config = os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config"
        credentials = os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"
        raise InvalidRequest(
            f"--profile {profile!r}: no such profile in {config} or {credentials}; check the name "
            "(`aws configure list-profiles` lists them) or create it with `aws configure --profile NAME`"
        ) from None


def _set(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
