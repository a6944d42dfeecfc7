"""The policy pack `pulumi preview --policy-pack policy` starts (docs/policy.md).

The CLI runs this directory with `python -m pulumi.policy`, which puts only `policy/` on the path: hence
`baseline` and `hardening` as top-level modules. Every policy is mandatory: a violation fails the preview or
the update.
"""

import baseline
import hardening
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name=baseline.PACK_NAME,
    policies=baseline.POLICIES + hardening.POLICIES,
    enforcement_level=EnforcementLevel.MANDATORY,
)
