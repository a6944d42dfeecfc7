"""The Pulumi CLI as the docs use it, emulated: stacks, `pulumi config set/rm` and `pulumi up` under the mocks.

The CLI cannot be installed here, so the docs' commands are applied the way Pulumi applies them
(sdk/go/common/resource/config/map.go in pulumi/pulumi, `Map.Set` and `Map.Remove`):

- a key without a namespace gets the project's (`rawBucket` is `data-file-ingestion:rawBucket`); `aws:region`
  keeps its own;
- without `--path`, the value is stored as the string given;
- with `--path`, the key is a property path (`datasets.orders.source.bucket`, `notificationEmails[0]`,
  `a["b.c"]`) into the key's object, creating maps and lists on the way; a list index may be at most the
  list's length (that appends); the value becomes `true`/`false`, an integer (unless it has a leading zero)
  or else stays a string;
- `pulumi stack init NAME` starts from `Pulumi.NAME.yaml` when the project has one, else empty;
- `pulumi preview` and `pulumi up` run `__main__.py` under recording mocks with the stack's config as the
  CLI hands it to the program (every value a string, objects as JSON); `pulumi stack output NAME` reads an
  export of the stack's last update.

Anything else the emulator does not know fails, so a doc command it cannot vouch for is not passed.
"""

from __future__ import annotations

import argparse
import copy
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml

from tests.infra.harness import Deployment, pulumi_string
from tests.infra.shell_blocks import Command

Deploy = Callable[[str, dict[str, str], bool], Deployment]
"""Runs the program for (stack name, config as the CLI hands it over, preview?), raising what it raises."""

_PATH_TOKEN = re.compile(r'\.?(?:\[(?P<index>\d+)\]|\["(?P<quoted>(?:\\"|[^"])*)"\]|(?P<name>[^.\[]+))')
_INT64 = range(-(2**63), 2**63)


class DocCommandFailed(AssertionError):
    """A command of the document fails as written (the message says which, and what Pulumi would say)."""


@dataclass
class Stack:
    """One stack: its config as the stack file holds it, and what its last update deployed."""

    name: str
    config: dict[str, Any]
    secret_keys: set[str] = field(default_factory=set)
    deployed: Deployment | None = None
    updates: list[Deployment] = field(default_factory=list)

    @property
    def last_update(self) -> Deployment:
        """What the last `pulumi up` deployed, whether or not a `pulumi destroy` followed."""
        assert self.updates, f"stack {self.name} was never updated"
        return self.updates[-1]

    def program_config(self) -> dict[str, str]:
        """The config as the CLI hands it to the program."""
        return {name: pulumi_string(value) for name, value in self.config.items()}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise DocCommandFailed(message)


def _parser(prog: str, *flags: str, options: Iterable[str] = (), positionals: Iterable[str] = ()) -> _Parser:
    parser = _Parser(prog=prog, add_help=False, allow_abbrev=False)
    for flag in flags:
        names = flag.split("/")
        parser.add_argument(*names, action="store_true")
    for option in options:
        parser.add_argument(*option.split("/"))
    for positional in positionals:
        optional = positional.endswith("?")
        parser.add_argument(positional.rstrip("?"), nargs="?" if optional else None)
    return parser


_COMMANDS: dict[tuple[str, ...], _Parser] = {
    ("login",): _parser("pulumi login", "--local", options=["--cloud-url"], positionals=["url?"]),
    ("install",): _parser("pulumi install"),
    ("stack", "init"): _parser("pulumi stack init", options=["--secrets-provider"], positionals=["name"]),
    ("stack", "select"): _parser("pulumi stack select", positionals=["name"]),
    ("stack", "output"): _parser("pulumi stack output", "--json/-j", "--show-secrets", positionals=["name?"]),
    ("config", "set"): _parser("pulumi config set", "--path", "--secret", "--plaintext", positionals=["key", "value"]),
    ("config", "rm"): _parser("pulumi config rm", "--path", positionals=["key"]),
    ("preview",): _parser("pulumi preview", "--diff", options=["--policy-pack"]),
    ("up",): _parser("pulumi up", "--yes/-y", "--skip-preview", "--diff", options=["--policy-pack"]),
    ("destroy",): _parser("pulumi destroy", "--yes/-y", "--skip-preview"),
}


class PulumiCli:
    """The stacks of one project directory and the `pulumi` commands the docs run on them."""

    def __init__(self, project_dir: Path, deploy: Deploy):
        self.project_dir = project_dir
        self.project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())["name"]
        self.deploy = deploy
        self.stacks: dict[str, Stack] = {}
        self.current: Stack | None = None

    def run_all(self, commands: Iterable[Command]) -> None:
        """Run a document's commands in order; other programs than `pulumi` (aws, curl, jq) are not emulated."""
        for command in commands:
            if command.argv[0] == "pulumi":
                try:
                    self.run(command.argv[1:])
                except DocCommandFailed as err:
                    raise DocCommandFailed(f"{command}\n  fails: {err}") from None

    def run(self, args: tuple[str, ...]) -> Any:
        for words, parser in _COMMANDS.items():
            if args[: len(words)] == words:
                options = parser.parse_args(list(args[len(words) :]))
                handler = getattr(self, "_" + "_".join(words))
                return handler(options)
        raise DocCommandFailed(f"`pulumi {' '.join(args)}` is not a command this emulator knows; teach it first")

    # ---- the commands ---------------------------------------------------------------------------------------

    def _login(self, options: argparse.Namespace) -> None:
        return None

    def _install(self, options: argparse.Namespace) -> None:
        return None

    def _stack_init(self, options: argparse.Namespace) -> None:
        if options.name in self.stacks:
            raise DocCommandFailed(f"stack '{options.name}' already exists")
        stack_file = self.project_dir / f"Pulumi.{options.name}.yaml"
        config = (yaml.safe_load(stack_file.read_text()) or {}).get("config", {}) if stack_file.exists() else {}
        self.current = self.stacks[options.name] = Stack(options.name, copy.deepcopy(config))

    def _stack_select(self, options: argparse.Namespace) -> None:
        if options.name not in self.stacks:
            raise DocCommandFailed(f"no stack named '{options.name}' found")
        self.current = self.stacks[options.name]

    def _stack_output(self, options: argparse.Namespace) -> Any:
        stack = self._selected()
        if stack.deployed is None:
            raise DocCommandFailed(f"stack '{stack.name}' has no outputs: it has not been deployed (`pulumi up`)")
        exports = stack.deployed.exports
        if options.name is None:
            return exports
        if options.name not in exports:
            raise DocCommandFailed(f"current stack does not have output property '{options.name}'")
        return exports[options.name]

    def _config_set(self, options: argparse.Namespace) -> None:
        stack = self._selected()
        full_key, path = self._key(options.key, options.path)
        if options.secret:
            stack.secret_keys.add(full_key)
        if len(path) == 1:
            stack.config[full_key] = options.value
            return
        root = {path[0]: self._as_object(stack.config.get(full_key))}
        cursor: Any = root
        for depth, step in enumerate(path[1:], start=1):
            cursor = _child(cursor, path[depth - 1], want=list if isinstance(step, int) else dict)
        value = options.value if options.secret else _adjust(options.value)
        _assign(cursor, path[-1], value)
        stack.config[full_key] = root[path[0]]

    def _config_rm(self, options: argparse.Namespace) -> None:
        stack = self._selected()
        full_key, path = self._key(options.key, options.path)
        if len(path) == 1:
            stack.config.pop(full_key, None)
            return
        node = stack.config.get(full_key)
        for step in path[1:-1]:
            node = _lookup(node, step)
        last = path[-1]
        if isinstance(node, dict) and isinstance(last, str):
            node.pop(last, None)
        elif isinstance(node, list) and isinstance(last, int) and last < len(node):
            del node[last]

    def _preview(self, options: argparse.Namespace) -> None:
        self._run_program(preview=True)

    def _up(self, options: argparse.Namespace) -> None:
        stack = self._selected()
        stack.deployed = self._run_program(preview=False)
        stack.updates.append(stack.deployed)

    def _destroy(self, options: argparse.Namespace) -> None:
        stack = self._selected()
        # The engine refuses to delete a protected resource, and so fails the whole destroy.
        protected = [r.name for r in stack.deployed.resources if r.protect] if stack.deployed else []
        if protected:
            raise DocCommandFailed(
                f"`pulumi destroy` of stack '{stack.name}' fails: resources are protected: {', '.join(protected)}"
            )
        stack.deployed = None

    # ---- helpers --------------------------------------------------------------------------------------------

    def _selected(self) -> Stack:
        if self.current is None:
            raise DocCommandFailed("no stack selected; run `pulumi stack init <name>` or `pulumi stack select`")
        return self.current

    def _key(self, key: str, path: bool) -> tuple[str, list[str | int]]:
        namespace, colon, name = key.partition(":")
        if not colon:
            namespace, name = self.project, key
        steps = _parse_path(name) if path else [name]
        if not steps or not isinstance(steps[0], str) or not steps[0]:
            raise DocCommandFailed(f"invalid config key path {key!r}: the first segment must be a name")
        return f"{namespace}:{steps[0]}", steps

    @staticmethod
    def _as_object(value: Any) -> Any:
        # Pulumi overwrites a plain string value when a path is set into it.
        return None if isinstance(value, str) else value

    def _run_program(self, preview: bool) -> Deployment:
        stack = self._selected()
        try:
            return self.deploy(stack.name, stack.program_config(), preview)
        except pulumi.RunError as err:
            verb = "preview" if preview else "up"
            raise DocCommandFailed(f"`pulumi {verb}` of stack '{stack.name}' fails:\n{err}") from None


def _parse_path(text: str) -> list[str | int]:
    """A Pulumi property path (`a.b[0]["c.d"]`) as its segments."""
    steps: list[str | int] = []
    position = 0
    while position < len(text):
        match = _PATH_TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise DocCommandFailed(f"invalid config key path {text!r} at {text[position:]!r}")
        if match.group("index") is not None:
            steps.append(int(match.group("index")))
        elif match.group("quoted") is not None:
            steps.append(match.group("quoted").replace('\\"', '"'))
        else:
            steps.append(match.group("name"))
        position = match.end()
    return steps


def _child(container: Any, step: str | int, want: type) -> Any:
    """The value under `step`, created as an empty `want` when missing; Pulumi's errors when it cannot be."""
    value = _lookup(container, step, strict=True)
    if value is None:
        value = want()
        _assign(container, step, value)
    elif not isinstance(value, want):
        what = "an array was expected for index" if want is list else "a map was expected for key"
        raise DocCommandFailed(f"{what} after {step!r}")
    return value


def _lookup(container: Any, step: str | int, strict: bool = False) -> Any:
    if isinstance(container, list) and isinstance(step, int):
        if step > len(container):
            if strict:
                raise DocCommandFailed("array index out of range")
            return None
        return container[step] if step < len(container) else None
    if isinstance(container, dict) and isinstance(step, str):
        return container.get(step)
    if strict:
        raise DocCommandFailed(f"cannot index {type(container).__name__} with {step!r}")
    return None


def _assign(container: Any, step: str | int, value: Any) -> None:
    if isinstance(container, list) and isinstance(step, int):
        if step > len(container):
            raise DocCommandFailed("array index out of range")
        if step == len(container):
            container.append(value)
        else:
            container[step] = value
    elif isinstance(container, dict) and isinstance(step, str):
        container[step] = value
    else:
        raise DocCommandFailed(f"cannot set {step!r} in {type(container).__name__}")


def _adjust(value: str) -> Any:
    """What `--path` stores for a string: Pulumi's adjustObjectValue."""
    if value in ("true", "false"):
        return value == "true"
    if len(value) > 1 and value.startswith("0"):
        return value
    if re.fullmatch(r"[+-]?\d+", value) and int(value) in _INT64:
        return int(value)
    return value
