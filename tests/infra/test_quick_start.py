"""README.md and docs/deploy.md followed literally: every `pulumi` command they give works as written.

The commands are read from the documents' sh blocks, in order, and applied as the Pulumi CLI applies them
(tests/infra/pulumi_cli.py): `pulumi stack init dev` starts from Pulumi.dev.yaml, another stack from
nothing, `pulumi config set` changes the selected stack, and every `pulumi preview`/`pulumi up` runs
__main__.py under the mocks, so a command that leaves an invalid stack config fails here first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pulumi
import pytest
import yaml

from infra.stack_config import NAMESPACE, parse_stack_config
from tests.infra.harness import ACCOUNT, REGION, ROOT, Deployment, RecordingMocks, placeholders, run_main
from tests.infra.pulumi_cli import DocCommandFailed, PulumiCli, Stack
from tests.infra.shell_blocks import ShellTextError, commands, without_section

BUCKET = "aws:s3/bucket:Bucket"
OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
ANOTHER_ENVIRONMENT = "## Another environment"


def deploy_doc() -> str:
    return (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")


def readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.fixture
def cli() -> Iterator[PulumiCli]:
    def deploy(stack: str, config: dict[str, str], preview: bool) -> Deployment:
        mocks = RecordingMocks()  # each update registers its resources afresh, as a real one does
        pulumi.runtime.set_mocks(mocks, project=NAMESPACE, stack=stack, preview=preview, monitor=mocks.monitor)
        return run_main(mocks, config)

    yield PulumiCli(ROOT, deploy)
    pulumi.runtime.set_all_config({})


def follow(cli: PulumiCli, markdown: str) -> PulumiCli:
    cli.run_all(commands(markdown))
    return cli


def filled(name: str) -> str:
    """A bucket name of the stack config as the program deploys it, for the mocks' account and region."""
    return name.replace("{account_id}", ACCOUNT).replace("{region}", REGION)


def setting(stack: Stack, name: str) -> Any:
    return stack.config[f"{NAMESPACE}:{name}"]


def config_objects(deployment: Deployment) -> dict[str, dict[str, Any]]:
    """Dataset name -> its dataset config, as written for the Lambda."""
    documents = [json.loads(o.inputs["content"]) for o in deployment.of_type(OBJECT)]
    return {name: ds for document in documents for name, ds in document["datasets"].items()}


def assert_deployed_as_configured(stack: Stack) -> None:
    """The stack's last update created the buckets its config names and lands every dataset in rawBucket."""
    deployment = stack.last_update
    raw, config_bucket = filled(setting(stack, "rawBucket")), filled(setting(stack, "configBucket"))
    datasets = setting(stack, "datasets")
    created = {filled(ds["source"]["bucket"]) for ds in datasets.values() if ds["source"].get("create")}

    # Plus the access log bucket, which no config names (Pulumi names it).
    named = {b.inputs["bucket"] for b in deployment.of_type(BUCKET) if "bucket" in b.inputs}
    assert named == {raw, config_bucket, *created}
    assert len(deployment.of_type(BUCKET)) == len(named) + 1
    assert deployment.exports["rawBucketName"] == raw
    assert deployment.exports["configBucketName"] == config_bucket
    landed = config_objects(deployment)
    assert set(landed) == set(datasets)
    for name, dataset in landed.items():
        assert dataset["target"]["bucket"] == raw, name
        assert dataset["source"]["bucket"] == filled(datasets[name]["source"]["bucket"]), name


# ---- the documents as written ----------------------------------------------------------------------------------


def test_deploy_doc_from_login_to_tear_down_works_for_the_dev_stack_and_another_environment(cli: PulumiCli) -> None:
    follow(cli, deploy_doc())

    dev, prod = cli.stacks["dev"], cli.stacks["prod"]
    for stack in (dev, prod):
        assert_deployed_as_configured(stack)
    # The dev stack with the names chosen in step 2 and the address of step 3.
    assert dev.last_update.exports["rawBucketName"] == f"acme-dev-raw-{ACCOUNT}"
    assert [s.inputs["endpoint"] for s in dev.last_update.of_type(SUBSCRIPTION)] == ["you@example.com"]
    assert set(setting(dev, "datasets")) == {"movielens"}
    # Another environment, built from nothing; the dataset added, changed and removed again on the way.
    assert prod.config["aws:region"] == "eu-west-1"
    assert prod.last_update.exports["rawBucketName"] == f"acme-prod-raw-{ACCOUNT}-{REGION}"
    assert set(config_objects(prod.last_update)) == {"orders"}
    changed = {"schedule": "cron(0 2 * * ? *)", "timezone": "Europe/Berlin", "include": ["*.json.gz"]}
    assert any(changed.items() <= config_objects(update).get("clicks", {}).items() for update in prod.updates)
    # Tear down: the flag reached every bucket in an update before the destroy.
    assert prod.config[f"{NAMESPACE}:forceDestroyBuckets"] == "true"
    assert all(b.inputs["forceDestroy"] is True for b in prod.last_update.of_type(BUCKET))


def test_deploy_doc_everyday_changes_work_on_the_dev_stack_too(cli: PulumiCli) -> None:
    follow(cli, without_section(deploy_doc(), ANOTHER_ENVIRONMENT))

    assert set(cli.stacks) == {"dev"}
    dev = cli.stacks["dev"]
    assert_deployed_as_configured(dev)
    assert {"movielens", "clicks"} in [set(config_objects(update)) for update in dev.updates]
    assert set(config_objects(dev.last_update)) == {"movielens"}  # `pulumi config rm` took clicks out again


def test_readme_quick_start_renames_the_dev_buckets_and_adds_a_dataset(cli: PulumiCli) -> None:
    follow(cli, readme())

    dev = cli.stacks["dev"]
    assert_deployed_as_configured(dev)
    assert dev.last_update.exports["rawBucketName"] == f"my-company-dev-raw-{ACCOUNT}"
    assert set(config_objects(dev.last_update)) == {"movielens", "orders"}


def test_deploy_doc_lists_exactly_the_stack_outputs_the_program_exports(cli: PulumiCli) -> None:
    follow(cli, "```sh\npulumi stack init dev\npulumi up\n```\n")
    listed = re.search(r"^Stack outputs: (.*?)\. ", deploy_doc(), re.M | re.S)
    assert listed, "docs/deploy.md no longer has its 'Stack outputs:' line"
    names = re.findall(r"`(\w+)`", listed.group(1))
    assert len(names) == len(set(names))
    assert set(names) == set(cli.stacks["dev"].last_update.exports)


def test_deploy_doc_example_dataset_is_valid_stack_config() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", deploy_doc(), re.S)
    examples = [yaml.safe_load(block)["config"] for block in blocks if block.startswith("config:")]
    assert examples
    dev = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    for example in examples:
        values = {k.partition(":")[2]: v for k, v in {**dev, **example}.items() if k.startswith(NAMESPACE)}
        config = parse_stack_config(values, placeholders=placeholders)
        assert all(ds.target.bucket == config.raw_bucket for ds in config.datasets.datasets.values())


# ---- the check itself: a doc command that breaks the stack fails it -------------------------------------------


def at_first_up(extra: str, after: bool = False) -> str:
    """docs/deploy.md with one more command just before (or after) the first `pulumi up` it gives."""
    doc = deploy_doc()
    first_up = re.search(r"^([ \t]*)pulumi up\n", doc, re.M)
    assert first_up, "docs/deploy.md gives no `pulumi up`"
    line = first_up.group(1) + extra + "\n"
    at = first_up.end() if after else first_up.start()
    return doc[:at] + line + doc[at:]


@pytest.mark.parametrize(
    ("extra", "failure"),
    [
        # A target that is not the raw bucket: the program refuses the stack at the next `pulumi up`.
        (
            "pulumi config set --path 'datasets.movielens.target.bucket' someone-elses-raw",
            r"datasets\.movielens\.target\.bucket: 'someone-elses-raw' is not this stack's raw bucket",
        ),
        # A placeholder the program does not know.
        ("pulumi config set rawBucket 'acme-dev-raw-{account}'", r"rawBucket: \{account\} is not a placeholder"),
        # A bucket name S3 refuses, once filled in.
        ("pulumi config set configBucket 'Acme-{region}'", r"configBucket: 'Acme-eu-west-1' is not a valid S3 bucket"),
        # Pulumi's own refusals: a list index past the end, a key into a list.
        ("pulumi config set --path 'notificationEmails[2]' you@example.com", "array index out of range"),
        ("pulumi config set --path 'datasets.movielens.include.first' '*.tsv'", "a map was expected"),
        # What a shell would do with it.
        ("pulumi config set --path notificationEmails[1] you@example.com", r"'\[' outside quotes"),
        ("pulumi config set --paht 'notificationEmails[1]' you@example.com", "unrecognized arguments: --paht"),
        ("pulumi stack rm dev", "not a command this emulator knows"),
    ],
)
def test_a_doc_command_that_breaks_the_stack_fails_the_walk(cli: PulumiCli, extra: str, failure: str) -> None:
    with pytest.raises((DocCommandFailed, ShellTextError), match=failure):
        follow(cli, at_first_up(extra))


def test_a_doc_command_reading_an_output_the_program_does_not_export_fails_the_walk(cli: PulumiCli) -> None:
    with pytest.raises(DocCommandFailed, match="does not have output property 'rawBucket'"):
        follow(cli, at_first_up('aws s3 ls "s3://$(pulumi stack output rawBucket)"', after=True))


def test_a_doc_block_that_leaves_the_stack_invalid_fails_at_its_pulumi_up(cli: PulumiCli) -> None:
    broken = "```sh\npulumi stack init prod\npulumi config set rawBucket acme-prod-raw\npulumi up\n```\n"
    with pytest.raises(DocCommandFailed, match=r"line 4: pulumi up[\s\S]*configBucket: missing"):
        follow(cli, broken)


# ---- the emulation is Pulumi's, where the docs rely on it ----------------------------------------------------


def test_config_set_stores_values_as_pulumi_does(cli: PulumiCli) -> None:
    follow(
        cli,
        """```sh
pulumi stack init prod
pulumi config set lambdaMemoryMb 2048
pulumi config set --path 'datasets.a.source.create' true
pulumi config set --path 'datasets.a.batch_max_objects' 500
pulumi config set --path 'datasets.a.source.prefix' 007
pulumi config set --path 'datasets.a["odd.key"]' x
pulumi config set --path 'notificationEmails[0]' a@example.com
pulumi config set --path 'notificationEmails[1]' b@example.com
pulumi config set --path 'notificationEmails[0]' c@example.com
pulumi config set aws:region eu-west-1
```
""",
    )
    config = cli.stacks["prod"].config
    assert config[f"{NAMESPACE}:lambdaMemoryMb"] == "2048"  # without --path: the string as given
    assert config[f"{NAMESPACE}:datasets"] == {
        "a": {"source": {"create": True, "prefix": "007"}, "batch_max_objects": 500, "odd.key": "x"}
    }
    assert config[f"{NAMESPACE}:notificationEmails"] == ["c@example.com", "b@example.com"]
    assert config["aws:region"] == "eu-west-1"
    # What the program is handed: strings, objects as JSON.
    assert json.loads(cli.stacks["prod"].program_config()[f"{NAMESPACE}:notificationEmails"]) == [
        "c@example.com",
        "b@example.com",
    ]


def test_config_rm_with_a_path_removes_one_dataset(cli: PulumiCli) -> None:
    follow(cli, "```sh\npulumi stack init dev\npulumi config rm --path 'datasets.movielens.include'\n```\n")
    assert "include" not in cli.stacks["dev"].config[f"{NAMESPACE}:datasets"]["movielens"]
    assert "source" in cli.stacks["dev"].config[f"{NAMESPACE}:datasets"]["movielens"]


def test_only_a_block_marked_not_walked_is_left_out_of_the_walk() -> None:
    doc = (
        "```sh\npulumi up\n```\n\n<!-- not walked: needs a KMS stack; see test_policies.py -->\n"
        "```sh\npulumi destroy\n```\n"
        "\n<!-- a plain comment -->\n```sh\npulumi preview\n```\n"
    )
    assert [c.argv for c in commands(doc)] == [("pulumi", "up"), ("pulumi", "preview")]
