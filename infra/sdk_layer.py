"""The function's SDK layer: boto3, botocore and their dependencies exactly as requirements.txt pins them.

Without it the function runs on whatever boto3/botocore its managed runtime carries, which AWS updates on its
own schedule and may lag in a region (handler/store/sdk.py names the oldest botocore that works). The layer makes the
deployed SDK the one the tests ran against.

The layer is built at `pulumi up` time, without a network, from the distributions installed in the deployer's
virtualenv (Pulumi installs requirements.txt into .venv): `layer_content` is a pure function from those
distributions to archive paths; `installed_sdk_layer` is the thin edge that reads them with importlib.metadata.
It refuses, before anything is created, when an installed version is not the pinned one (the layer would not be
what the tests ran), when a distribution of the closure is not pinned (the layer would change with whatever pip
resolved that day), or when one is not pure Python (a wheel built for the deployer's machine would not load on
arm64 Lambda).

Layout: everything under `python/`, which Lambda's Python runtimes put on sys.path (/opt/python), ahead of the
runtime's own SDK (https://docs.aws.amazon.com/lambda/latest/dg/packaging-layers.html#packaging-layers-paths,
https://docs.aws.amazon.com/lambda/latest/dg/python-package.html#python-package-searchpath). Each package's
`.dist-info/METADATA` goes too, so `importlib.metadata.version("botocore")` answers in Lambda. Byte-code caches
stay out: they are the deployer's Python's (3.11 here, 3.13 in Lambda), and Lambda ignores a cache whose magic
number is not its own. So do the files an installer writes about itself (RECORD, INSTALLER, REQUESTED,
direct_url.json), so the archive, and with it the layer version, depends on the pinned wheels only, not on which
machine or installer ran pip.
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

SDK_ROOTS = ("boto3",)
"""What the handler imports from outside the standard library (botocore and s3transfer come with boto3)."""

LAMBDA_PYTHON = "3.13"
"""The function's runtime (infra/function.py RUNTIME): dependency markers are evaluated for it, not the deployer."""

LAMBDA_MARKERS: dict[str, str] = {
    "implementation_name": "cpython",
    "implementation_version": f"{LAMBDA_PYTHON}.0",
    "os_name": "posix",
    "platform_machine": "aarch64",
    "platform_python_implementation": "CPython",
    "platform_release": "",
    "platform_system": "Linux",
    "platform_version": "",
    "python_full_version": f"{LAMBDA_PYTHON}.0",
    "python_version": LAMBDA_PYTHON,
    "sys_platform": "linux",
    "extra": "",  # no extras: boto3[crt] would pull in awscrt, a compiled wheel
}
"""PEP 508 environment of the function: Python 3.13 on arm64 (Graviton) Amazon Linux."""

LAYER_ROOT = "python"
"""The layer's top-level directory; Lambda mounts it as /opt/python, on the Python runtimes' sys.path."""

INSTALLER_FILES = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})
"""dist-info files an installer writes about the installation, not part of the package (left out, see above)."""

COMPILED_SUFFIXES = (".so", ".pyd", ".dylib", ".dll")

LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
"""Function code and all its layers, unzipped (https://docs.aws.amazon.com/lambda/latest/dg/adding-layers.html)."""


class SdkLayerError(Exception):
    """The installed SDK cannot make the layer requirements.txt describes; the message says what to do."""


@dataclass(frozen=True)
class InstalledDist:
    """What the layer needs to know of one installed distribution (a view of importlib.metadata's)."""

    name: str
    version: str
    requires: tuple[str, ...]
    """Its Requires-Dist lines, markers included."""
    wheel_tags: tuple[str, ...]
    """The Tag lines of its WHEEL file (`py3-none-any`); empty when it has none."""
    files: tuple[tuple[str, Path], ...]
    """(path as its RECORD lists it, relative to site-packages; the file on disk)."""


@dataclass(frozen=True)
class SdkLayer:
    """The layer's archive (path in the zip -> file on disk) and the versions it carries."""

    files: Mapping[str, Path]
    versions: Mapping[str, str]
    """Distribution name -> version, in the order the closure reached them (boto3 first)."""

    def unzipped_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.files.values())

    def description(self) -> str:
        """Shown in the Lambda console next to the layer version."""
        return "Pinned SDK (requirements.txt): " + ", ".join(f"{n} {v}" for n, v in self.versions.items())


def read_pins(text: str) -> dict[str, str]:
    """Canonical name -> version of every `name==version` line of a requirements file (others are ignored)."""
    pins: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        specs = list(requirement.specifier)
        if len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version:
            pins[canonicalize_name(requirement.name)] = specs[0].version
    return pins


def layer_content(
    find: Callable[[str], InstalledDist | None],
    pins: Mapping[str, str],
    roots: Iterable[str] = SDK_ROOTS,
    environment: str = "the deployer's virtualenv",
) -> SdkLayer:
    """The layer for `roots` and everything they require on Lambda, from the distributions `find` returns.

    `find(name)` is the installed distribution of that name, or None. Raises SdkLayerError naming every
    distribution that is missing, unpinned, at another version than its pin, or not pure Python.
    """
    problems: list[str] = []
    versions: dict[str, str] = {}
    files: dict[str, Path] = {}
    owners: dict[str, str] = {}
    queue: list[tuple[str, str | None, Requirement | None]] = [(name, None, None) for name in roots]
    seen: set[str] = set()
    while queue:
        name, wanted_by, requirement = queue.pop(0)
        canonical = canonicalize_name(name)
        if canonical in seen:
            continue
        seen.add(canonical)
        why = f" (required by {wanted_by})" if wanted_by else ""
        dist = find(name)
        if dist is None:
            problems.append(f"{name}{why} is not installed in {environment}: run `pulumi install`")
            continue
        problems.extend(_dist_problems(dist, wanted_by, pins.get(canonical), requirement))
        versions[dist.name] = dist.version
        for relative, path in dist.files:
            archive_path = _archive_path(relative)
            if archive_path is None:
                continue
            if archive_path in owners and owners[archive_path] != dist.name:
                problems.append(f"{archive_path} is in both {owners[archive_path]} and {dist.name}")
            owners[archive_path] = dist.name
            files[archive_path] = path
        for line in dist.requires:
            try:
                needed = Requirement(line)
            except InvalidRequirement:
                problems.append(f"{dist.name} {dist.version} declares a requirement that cannot be read: {line!r}")
                continue
            if needed.marker is None or _applies(needed.marker):
                queue.append((needed.name, dist.name, needed))
    if problems:
        raise SdkLayerError(
            "cannot build the function's SDK layer from the pins in requirements.txt:\n  - "
            + "\n  - ".join(problems)
            + "\nThe layer must carry exactly the SDK the tests ran against. Install the pins into the virtualenv "
            "Pulumi runs (`pulumi install`, or `.venv/bin/pip install -r requirements.txt`); to deploy on the "
            "runtime's own SDK instead, `pulumi config set lambdaSdkLayer false` (docs/deploy.md)."
        )
    if not files:
        raise SdkLayerError(f"no files found for {', '.join(roots)} in {environment}: nothing to put in the layer")
    return SdkLayer(files=dict(sorted(files.items())), versions=versions)


def _dist_problems(
    dist: InstalledDist, wanted_by: str | None, pin: str | None, requirement: Requirement | None
) -> list[str]:
    problems = []
    why = f" (required by {wanted_by})" if wanted_by else ""
    if pin is None:
        problems.append(
            f"{dist.name}{why} is not pinned in requirements.txt: add `{dist.name}=={dist.version}` (the version "
            "installed), so the layer does not change with whatever pip resolves next"
        )
    elif dist.version != pin:
        problems.append(
            f"{dist.name} {dist.version} is installed, but requirements.txt pins {dist.name}=={pin}: install the pins"
        )
    if requirement is not None and not requirement.specifier.contains(dist.version, prereleases=True):
        problems.append(f"{dist.name} {dist.version} is installed, but {wanted_by} needs {requirement}")
    if not _pure(dist.wheel_tags):
        tags = ", ".join(dist.wheel_tags) or "no WHEEL file"
        problems.append(
            f"{dist.name} {dist.version} is not a pure-Python wheel ({tags}): code compiled for this machine "
            "would not load on the function's arm64 Lambda"
        )
    if not dist.files:
        problems.append(f"{dist.name} {dist.version} lists no files (no RECORD): reinstall it with pip")
    compiled = sorted(rel for rel, _ in dist.files if rel.endswith(COMPILED_SUFFIXES))
    if compiled:
        problems.append(f"{dist.name} {dist.version} holds compiled code ({', '.join(compiled[:3])})")
    return problems


def _pure(tags: Iterable[str]) -> bool:
    """True for a wheel that runs on any Python 3 anywhere: every tag `*-none-any`, one of them for Python 3."""
    parsed = [tag.split("-") for tag in tags]
    if not parsed or any(len(parts) != 3 for parts in parsed):
        return False
    return all(abi == "none" and platform == "any" for _, abi, platform in parsed) and any(
        "py3" in python.split(".") for python, _, _ in parsed
    )


def _applies(marker: Marker) -> bool:
    return marker.evaluate(dict(LAMBDA_MARKERS))


def _archive_path(relative: str) -> str | None:
    """Where a file of a distribution goes in the layer; None for what stays out (module docstring)."""
    path = PurePosixPath(relative.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        return None  # installed outside site-packages: console scripts (jmespath's bin/jp.py)
    if "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
        return None
    if len(path.parts) == 2 and path.parts[0].endswith(".dist-info") and path.name in INSTALLER_FILES:
        return None
    return f"{LAYER_ROOT}/{path.as_posix()}"


def installed(name: str) -> InstalledDist | None:
    """The distribution `name` as the running interpreter has it installed (Pulumi runs the program in .venv)."""
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    wheel = dist.read_text("WHEEL") or ""
    tags = tuple(line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:"))
    files = tuple((str(f), Path(str(dist.locate_file(f)))) for f in dist.files or ())
    return InstalledDist(dist.metadata["Name"], dist.version, tuple(dist.requires or ()), tags, files)


def installed_sdk_layer(requirements: Path) -> SdkLayer:
    """The layer from this interpreter's installed SDK, checked against `requirements` (raises SdkLayerError)."""
    content = layer_content(installed, read_pins(requirements.read_text()), environment=sys.prefix)
    missing = sorted(path for path, file in content.files.items() if not file.is_file())
    if missing:
        raise SdkLayerError(
            f"the installed SDK in {sys.prefix} is incomplete ({len(missing)} files its RECORD lists are gone, "
            f"e.g. {missing[0]}): reinstall it with `.venv/bin/pip install --force-reinstall -r requirements.txt`"
        )
    if content.unzipped_bytes() > LAMBDA_UNZIPPED_LIMIT:
        raise SdkLayerError(f"the SDK layer would be {content.unzipped_bytes():,} bytes unzipped, over Lambda's 250 MB")
    return content
