"""The function carries the SDK requirements.txt pins: a layer the stack builds from .venv (infra/sdk_layer.py).

Under the mocks: the layer exists, is attached, holds exactly the pinned boto3/botocore and no byte-code, and the
function's own zip is still only handler/. With fakes: the pure builder refuses a version that is not the pin, an
unpinned dependency and a compiled wheel. For real: a fresh interpreter that sees only the standard library, the
function's zip and the layer imports the handler and finds botocore at the pin, with CopyObject's IfNoneMatch.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import pulumi
import pytest

from infra.function import ARCHITECTURE, RUNTIME, layer_name
from infra.pipeline import IngestionPipeline, IngestionPipelineArgs
from infra.sdk_layer import (
    LAMBDA_PYTHON,
    InstalledDist,
    SdkLayerError,
    layer_content,
    read_pins,
)
from tests.infra.harness import (
    ACCOUNT,
    HANDLER_DIR,
    REGION,
    ROOT,
    Deployment,
    RecordingMocks,
    dev_stack_config,
    two_dataset_config,
)

Run = Callable[[dict[str, str]], Deployment]
LAYER = "aws:lambda/layerVersion:LayerVersion"
FUNCTION = "aws:lambda/function:Function"


def pins() -> dict[str, str]:
    """requirements.txt's `name==version` lines, read here without the code under test."""
    found = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    return {name.lower(): version for name, version in found}


def metadata_version(archive: pulumi.AssetArchive, dist_dir: str) -> str:
    asset = archive.assets[f"python/{dist_dir}/METADATA"]
    return re.search(r"^Version: (\S+)$", Path(asset.path).read_text(), re.MULTILINE).group(1)


def extract(archive: pulumi.AssetArchive, into: Path) -> Path:
    """Write the archive's files out as Lambda unpacks it."""
    for name, asset in archive.assets.items():
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(asset.path, target)
    return into


@pytest.fixture
def dev(run_program: Run) -> Deployment:
    return run_program(dev_stack_config())


def test_the_dev_stack_publishes_one_sdk_layer_for_python_3_13_on_arm64_and_attaches_it(dev: Deployment) -> None:
    (layer,) = dev.of_type(LAYER)
    (function,) = dev.of_type(FUNCTION)

    assert layer.inputs["compatibleRuntimes"] == [RUNTIME.value] == [f"python{LAMBDA_PYTHON}"]
    assert layer.inputs["compatibleArchitectures"] == [ARCHITECTURE] == function.inputs["architectures"]
    assert function.inputs["layers"] == [layer.arn]
    assert layer.arn == f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{layer.inputs['layerName']}:1"
    # Named per project and stack (Lambda does not auto-name layers): two stacks in one account never share one.
    assert layer.inputs["layerName"] == "data-file-ingestion-test-ingestion-lambda-sdk"
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,140}", layer.inputs["layerName"])
    assert any("IngestFunction" in urn and urn.endswith("::ingestion-lambda-sdk") for urn in dev.urns)


def test_the_layer_carries_exactly_the_pinned_boto3_and_botocore_under_python(dev: Deployment) -> None:
    (layer,) = dev.of_type(LAYER)
    archive = layer.inputs["code"]
    pinned = pins()

    assert isinstance(archive, pulumi.AssetArchive)
    assert metadata_version(archive, f"boto3-{pinned['boto3']}.dist-info") == pinned["boto3"]
    assert metadata_version(archive, f"botocore-{pinned['botocore']}.dist-info") == pinned["botocore"]
    assert {"python/boto3/__init__.py", "python/botocore/__init__.py", "python/s3transfer/__init__.py"} <= set(
        archive.assets
    )
    assert f"boto3 {pinned['boto3']}, botocore {pinned['botocore']}" in layer.inputs["description"]
    # Nothing outside python/, no byte-code, nothing the installer wrote about this machine.
    assert all(name.startswith("python/") and ".." not in name.split("/") for name in archive.assets)
    assert not [n for n in archive.assets if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
    assert not [n for n in archive.assets if n.rsplit("/", 1)[-1] in {"RECORD", "INSTALLER", "direct_url.json"}]
    # Every distribution in it is pinned, at its pin.
    dist_infos = {n.split("/")[1] for n in archive.assets if n.split("/")[1].endswith(".dist-info")}
    carried = {d.removesuffix(".dist-info").rsplit("-", 1)[0].replace("_", "-").lower(): d for d in dist_infos}
    assert set(carried) == {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six"}
    assert {name: metadata_version(archive, d) for name, d in carried.items()} == {n: pinned[n] for n in carried}


def test_the_function_zip_still_holds_only_the_handler_package(dev: Deployment) -> None:
    (function,) = dev.of_type(FUNCTION)
    on_disk = {f"handler/{p.relative_to(HANDLER_DIR).as_posix()}" for p in HANDLER_DIR.rglob("*.py")}

    assert set(function.inputs["code"].assets) == {n for n in on_disk if "__pycache__" not in n}


def test_lambda_sdk_layer_false_deploys_on_the_runtime_sdk_without_a_layer(run_program: Run) -> None:
    deployment = run_program({**dev_stack_config(), "data-file-ingestion:lambdaSdkLayer": "false"})
    (function,) = deployment.of_type(FUNCTION)

    assert deployment.of_type(LAYER) == []
    assert not function.inputs.get("layers")


def test_an_installed_sdk_that_is_not_the_pin_stops_pulumi_up_before_anything_is_created(
    run_program: Run, mocks: RecordingMocks
) -> None:
    real = __import__("infra.sdk_layer", fromlist=["installed"]).installed

    def older_botocore(name: str) -> InstalledDist | None:
        dist = real(name)
        if dist is not None and dist.name == "botocore":
            return InstalledDist(dist.name, "1.40.60", dist.requires, dist.wheel_tags, dist.files)
        return dist

    with (
        mock.patch("infra.sdk_layer.installed", older_botocore),
        pytest.raises(pulumi.RunError, match=r"botocore 1\.40\.60 is installed, but requirements.txt pins botocore=="),
    ):
        run_program(dev_stack_config())
    assert mocks.resources == []


def test_a_fresh_interpreter_with_only_the_zip_and_the_layer_imports_the_handler_on_the_pinned_sdk(
    dev: Deployment, tmp_path: Path
) -> None:
    """As Lambda lays them out: the zip in /var/task, the layer in /opt. `-I -S`: no site-packages, no PYTHONPATH,
    so anything the handler needs beyond the standard library must come from those two directories."""
    (layer,) = dev.of_type(LAYER)
    (function,) = dev.of_type(FUNCTION)
    task = extract(function.inputs["code"], tmp_path / "task")
    opt = extract(layer.inputs["code"], tmp_path / "opt")
    probe = f"""
import importlib.metadata, json, logging, sys
logging.basicConfig()  # the Lambda runtime gives the root logger a handler; a bare interpreter has none
sys.path[:0] = [{str(task)!r}, {str(opt / "python")!r}]
import handler.lambda_function
import boto3, botocore, s3transfer, urllib3, dateutil, jmespath, six
from handler.store.sdk import loaded_sdk, require_botocore
require_botocore()
client = boto3.client("s3", region_name="us-east-1")
copy = client.meta.service_model.operation_model("CopyObject").input_shape.members
print(json.dumps({{
    "boto3": boto3.__version__,
    "botocore": botocore.__version__,
    "metadata": importlib.metadata.version("botocore"),
    "files": [m.__file__ for m in (boto3, botocore, s3transfer, urllib3, dateutil, jmespath, six)],
    "copy_if_none_match": "IfNoneMatch" in copy,
    "loaded": loaded_sdk(),
}}))
"""
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    pinned = pins()

    assert seen["boto3"] == pinned["boto3"]
    assert seen["botocore"] == seen["metadata"] == pinned["botocore"]
    assert all(f.startswith(str(opt / "python")) for f in seen["files"]), seen["files"]
    assert seen["copy_if_none_match"] is True
    assert seen["loaded"] == f"boto3 {pinned['boto3']}, botocore {pinned['botocore']} from {opt / 'python'}"
    assert "sdk: boto3" in done.stderr  # the cold-start line (logging's default handler writes to stderr)
    # Nothing was written beside the code (Lambda's /var/task and /opt are read-only).
    assert not list(tmp_path.rglob("__pycache__"))


# The pure builder, fed fakes.


def fake(
    name: str, version: str, requires: tuple[str, ...] = (), tags: tuple[str, ...] = ("py3-none-any",), files=None
) -> InstalledDist:
    package = name.replace("-", "_")
    files = files or (f"{package}/__init__.py", f"{package}-{version}.dist-info/METADATA")
    return InstalledDist(name, version, requires, tags, tuple((f, Path("/site") / f) for f in files))


SDK = {
    "boto3": fake("boto3", "1.44.8", ("botocore<1.45.0,>=1.44.8", "botocore[crt]<2.0a0,>=1.21.0; extra == 'crt'")),
    "botocore": fake("botocore", "1.44.18", ("awscrt==0.38.0; extra == 'crt'",)),
}
PINS = {"boto3": "1.44.8", "botocore": "1.44.18"}


def test_the_builder_takes_the_closure_without_extras_and_places_it_under_python() -> None:
    layer = layer_content(SDK.get, PINS)

    assert layer.versions == {"boto3": "1.44.8", "botocore": "1.44.18"}  # awscrt (extra 'crt') is not asked for
    assert sorted(layer.files) == [
        "python/boto3-1.44.8.dist-info/METADATA",
        "python/boto3/__init__.py",
        "python/botocore-1.44.18.dist-info/METADATA",
        "python/botocore/__init__.py",
    ]


def test_the_builder_refuses_an_installed_version_that_is_not_the_pin() -> None:
    with pytest.raises(SdkLayerError) as refused:
        layer_content({**SDK, "botocore": fake("botocore", "1.44.17")}.get, PINS)

    message = str(refused.value)
    assert "botocore 1.44.17 is installed, but requirements.txt pins botocore==1.44.18" in message
    assert "pulumi install" in message and "lambdaSdkLayer false" in message


def test_the_builder_refuses_a_dependency_requirements_txt_does_not_pin() -> None:
    dists = {**SDK, "botocore": fake("botocore", "1.44.18", ("six>=1.5",)), "six": fake("six", "1.17.0")}

    with pytest.raises(SdkLayerError, match=r"six \(required by botocore\) is not pinned in requirements.txt: "):
        layer_content(dists.get, PINS)
    assert layer_content(dists.get, {**PINS, "six": "1.17.0"}).versions["six"] == "1.17.0"


def test_the_builder_refuses_a_compiled_wheel_and_reports_every_problem_at_once() -> None:
    dists = {
        **SDK,
        "boto3": fake("boto3", "1.44.8", ("botocore>=1.44.8", "fastjson")),
        "fastjson": fake(
            "fastjson",
            "2.0",
            tags=("cp311-cp311-manylinux_2_17_x86_64",),
            files=("fastjson/_speedups.cpython-311-x86_64-linux-gnu.so",),
        ),
        "botocore": fake("botocore", "1.44.17"),
    }

    with pytest.raises(SdkLayerError) as refused:
        layer_content(dists.get, {**PINS, "fastjson": "2.0"})

    message = str(refused.value)
    assert "fastjson 2.0 is not a pure-Python wheel (cp311-cp311-manylinux_2_17_x86_64)" in message
    assert "holds compiled code (fastjson/_speedups" in message
    assert "botocore 1.44.17 is installed" in message


def test_the_builder_refuses_what_is_missing_or_outside_the_requirement() -> None:
    dists = {"boto3": fake("boto3", "1.44.8", ("botocore<1.45.0,>=1.44.8", "s3transfer<0.20,>=0.19"))}
    dists["botocore"] = fake("botocore", "1.45.0")

    with pytest.raises(SdkLayerError) as refused:
        layer_content(dists.get, {**PINS, "botocore": "1.45.0"})

    message = str(refused.value)
    assert "s3transfer (required by boto3) is not installed" in message
    assert "botocore 1.45.0 is installed, but boto3 needs botocore<1.45.0,>=1.44.8" in message


def test_markers_are_evaluated_for_lambda_python_3_13_on_arm64_not_for_the_deployer() -> None:
    requires = (
        "botocore>=1.44.8",
        "old-backport; python_version < '3.12'",
        "new-only; python_version >= '3.13'",
        "intel-only; platform_machine == 'x86_64'",
    )
    dists = {**SDK, "boto3": fake("boto3", "1.44.8", requires), "new-only": fake("new-only", "1.0")}

    layer = layer_content(dists.get, {**PINS, "new-only": "1.0"})

    assert set(layer.versions) == {"boto3", "botocore", "new-only"}


def test_byte_code_scripts_and_installer_records_stay_out_of_the_layer() -> None:
    files = (
        "jmespath/__init__.py",
        "jmespath/__pycache__/__init__.cpython-311.pyc",
        "jmespath/stale.pyc",
        "../../../bin/jp.py",
        "jmespath-1.1.0.dist-info/METADATA",
        "jmespath-1.1.0.dist-info/RECORD",
        "jmespath-1.1.0.dist-info/INSTALLER",
        "jmespath-1.1.0.dist-info/REQUESTED",
        "jmespath-1.1.0.dist-info/direct_url.json",
        "jmespath-1.1.0.dist-info/licenses/LICENSE",
    )
    dists = {"jmespath": fake("jmespath", "1.1.0", files=files)}

    layer = layer_content(dists.get, {"jmespath": "1.1.0"}, roots=["jmespath"])

    assert sorted(layer.files) == [
        "python/jmespath-1.1.0.dist-info/METADATA",
        "python/jmespath-1.1.0.dist-info/licenses/LICENSE",
        "python/jmespath/__init__.py",
    ]


def test_pure_python_means_every_tag_none_any_with_one_for_python_3() -> None:
    def build(tags: tuple[str, ...]) -> None:
        layer_content({"six": fake("six", "1.17.0", tags=tags)}.get, {"six": "1.17.0"}, roots=["six"])

    build(("py2-none-any", "py3-none-any"))
    build(("py2.py3-none-any",))
    for tags in [(), ("py2-none-any",), ("py3-none-manylinux_2_17_aarch64",), ("cp313-abi3-any",)]:
        with pytest.raises(SdkLayerError, match="not a pure-Python wheel"):
            build(tags)


def test_pins_are_the_exact_name_equals_version_lines() -> None:
    text = "# c\nboto3==1.44.8\nBotoCore == 1.44.18  # why\nmoto[server,s3]==5.2.5\nruff>=0.1\nsix==1.*\n-r x.txt\n"

    assert read_pins(text) == {"boto3": "1.44.8", "botocore": "1.44.18", "moto": "5.2.5"}
    assert read_pins((ROOT / "requirements.txt").read_text()).items() >= {"boto3": pins()["boto3"]}.items()


def test_the_layer_name_keeps_to_what_lambda_accepts_whatever_the_stack_is_called() -> None:
    with mock.patch("pulumi.get_project", return_value="data-file-ingestion"):
        with mock.patch("pulumi.get_stack", return_value="prod.eu-2"):
            assert layer_name("ingestion-lambda") == "data-file-ingestion-prod-eu-2-ingestion-lambda-sdk"
        with mock.patch("pulumi.get_stack", return_value="s" * 200):
            assert len(layer_name("ingestion-lambda")) == 140


def test_a_pipeline_asked_for_the_layer_without_one_built_is_a_programming_error(mocks: RecordingMocks) -> None:
    @pulumi.runtime.test
    def program() -> None:
        IngestionPipeline("ingestion", IngestionPipelineArgs(config=two_dataset_config(), package_dir=HANDLER_DIR))

    with pytest.raises(ValueError, match="settings.sdk_layer is on but no SdkLayer was built"):
        program()
