"""The policy pack `pulumi preview --policy-pack policy` starts (docs/policy.md).

The CLI runs this directory with `python -m pulumi.policy`, which puts only `policy/` on the path: hence
`baseline` as a top-level module. Every policy is mandatory: a violation fails the preview or the update.
"""

from baseline import PACK_NAME, POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(name=PACK_NAME, policies=POLICIES, enforcement_level=EnforcementLevel.MANDATORY)
