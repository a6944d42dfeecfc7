"""Where the Lambda delivers a run's OpenLineage events: an OpenLineage HTTP endpoint (with an API key kept in
Secrets Manager or SSM Parameter Store, never in config) or an Amazon DataZone domain. Pure: the stack checks its
`lineage` setting with `parse` (infra/stack_config.py) and hands the function the same document in its environment
(`ENV`), which the `send_lineage` step reads back with `from_env`; the secret itself is read only at delivery
(handler/store/lineage.py).
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .naming import did_you_mean
from .openlineage import ENDPOINT

ENV = "LINEAGE_DESTINATION"
"""The function's environment variable holding the destination as its config document (JSON)."""

FIELDS = ("url", "endpoint", "apiKeySecret", "apiKeyParameter", "kmsKeyArn", "datazoneDomain")
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$")
_SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
_PARAMETER_NAME = re.compile(r"^/?[A-Za-z0-9_.\-/]{1,1011}$")
_KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
_DATAZONE_DOMAIN = re.compile(r"^dzd[-_][a-zA-Z0-9_-]{1,36}$")
"""PostLineageEvent's `domainIdentifier` pattern (botocore's datazone model)."""


@dataclass(frozen=True)
class LineageDestination:
    """One place a run's events go: `url` (an OpenLineage HTTP endpoint) or `datazone_domain`, never both."""

    url: str | None = None
    endpoint: str = ENDPOINT
    """The path under `url` events are posted to (OpenLineage's HTTP transport's default)."""
    api_key_secret: str | None = None
    """A Secrets Manager secret (ARN or name) whose value is the endpoint's API key (Bearer)."""
    api_key_parameter: str | None = None
    """An SSM SecureString parameter's name whose value is the API key."""
    kms_key_arn: str | None = None
    """The customer managed key the secret or parameter is encrypted with; None: the AWS managed key."""
    datazone_domain: str | None = None
    """An Amazon DataZone domain id (`dzd_...`): events go to its PostLineageEvent."""

    @property
    def secret(self) -> tuple[str, str] | None:
        """("secretsmanager" | "ssm", its name or ARN) when the endpoint's API key is kept in one."""
        if self.api_key_secret:
            return "secretsmanager", self.api_key_secret
        if self.api_key_parameter:
            return "ssm", self.api_key_parameter
        return None

    def describe(self) -> str:
        """Where events go, for logs and answers (never the key)."""
        if self.datazone_domain:
            return f"Amazon DataZone domain {self.datazone_domain}"
        return f"{str(self.url).rstrip('/')}/{self.endpoint.lstrip('/')}"

    @classmethod
    def parse(cls, value: Any, where: str = "lineage") -> LineageDestination:
        """The destination a config document names, or ConfigError naming every field that is wrong."""
        problems = destination_problems(value, where)
        if problems:
            raise ConfigError(problems)
        return cls(
            url=value.get("url"),
            endpoint=value.get("endpoint", ENDPOINT),
            api_key_secret=value.get("apiKeySecret"),
            api_key_parameter=value.get("apiKeyParameter"),
            kms_key_arn=value.get("kmsKeyArn"),
            datazone_domain=value.get("datazoneDomain"),
        )

    def to_document(self) -> dict[str, str]:
        """The destination as the config writes it; `parse` reads it back to an equal one."""
        values = {
            "url": self.url,
            "endpoint": self.endpoint if self.url and self.endpoint != ENDPOINT else None,
            "apiKeySecret": self.api_key_secret,
            "apiKeyParameter": self.api_key_parameter,
            "kmsKeyArn": self.kms_key_arn,
            "datazoneDomain": self.datazone_domain,
        }
        return {name: value for name, value in values.items() if value is not None}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LineageDestination | None:
        """The destination the stack gave the function, or None when the stack names none."""
        text = (os.environ if environ is None else environ).get(ENV)
        if not text:
            return None
        try:
            document = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"${ENV} is not JSON ({err.msg}); the stack writes it from its lineage setting") from None
        return cls.parse(document, f"${ENV}")


def destination_problems(value: Any, where: str = "lineage") -> list[str]:
    """Every problem with a `lineage` document, each prefixed with `where` and the field it is about."""
    if not isinstance(value, Mapping):
        return [
            f'{where}: must be an object: {{"url": "https://...", "apiKeySecret": "<secret name or ARN>"}} or '
            '{"datazoneDomain": "dzd_..."}'
        ]
    problems = [
        f"{where}.{name}: unknown field{did_you_mean(str(name), FIELDS, 'fields')}"
        for name in value
        if name not in FIELDS
    ]
    for name in FIELDS:
        if name in value and (not isinstance(value[name], str) or not value[name].strip()):
            problems.append(f"{where}.{name}: must be a non-empty string")
    if problems:
        return problems
    url, domain = value.get("url"), value.get("datazoneDomain")
    if (url is None) == (domain is None):
        return [
            f"{where}: give either url (an OpenLineage HTTP endpoint) or datazoneDomain (an Amazon DataZone domain), "
            "not both and not neither"
        ]
    if domain is not None:
        if not _DATAZONE_DOMAIN.match(domain):
            problems.append(f"{where}.datazoneDomain: {domain!r} is not a DataZone domain id (dzd_ and 1-36 letters)")
        extra = [name for name in ("endpoint", "apiKeySecret", "apiKeyParameter", "kmsKeyArn") if name in value]
        problems += [f"{where}.{name}: only for url (DataZone is called with the function's role)" for name in extra]
        return problems
    secret, parameter = value.get("apiKeySecret"), value.get("apiKeyParameter")
    problems += _url_problems(url, where, keyed=secret is not None or parameter is not None)
    if secret is not None and parameter is not None:
        problems.append(f"{where}: give apiKeySecret or apiKeyParameter, not both")
    if secret is not None and not (_SECRET_ARN.match(secret) or (_SECRET_NAME.match(secret) and ":" not in secret)):
        problems.append(
            f"{where}.apiKeySecret: {secret!r} is neither a Secrets Manager secret name nor its full ARN "
            "(arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 characters>)"
        )
    if parameter is not None and not _PARAMETER_NAME.match(parameter):
        problems.append(
            f"{where}.apiKeyParameter: {parameter!r} is not an SSM parameter name (letters, digits, _ . - /); "
            "give the name, not its ARN"
        )
    key = value.get("kmsKeyArn")
    if key is not None and secret is None and parameter is None:
        problems.append(f"{where}.kmsKeyArn: names the key of apiKeySecret or apiKeyParameter; give one of them")
    elif key is not None and not _KMS_KEY_ARN.match(key):
        problems.append(f"{where}.kmsKeyArn: {key!r} is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)")
    return problems


def _url_problems(url: str, where: str, *, keyed: bool) -> list[str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return [f"{where}.url: {url!r} must be an https:// URL of the lineage backend"]
    if parts.username is not None or parts.password is not None:
        return [
            f"{where}.url: must not hold a user or password (config is not secret); keep an API key in "
            "Secrets Manager (apiKeySecret) or SSM (apiKeyParameter)"
        ]
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        why = "the API key would cross the network in clear text" if keyed else "events would travel unencrypted"
        return [f"{where}.url: {url!r} must be https:// ({why}); http:// only to this machine"]
    return []
