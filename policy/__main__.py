"""The policy pack: the rules of rules.py as pulumi-policy policies on each Consul Release.

The CLI runs this file with the pack directory as the working directory and on sys.path; the
repository root is added so that the chart versions CI renders come from the one pins file.
"""

import os
import sys

import pulumi
from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationArgs, ResourceValidationPolicy

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))

from federation.chart_source import pins  # noqa: E402
from policy import rules  # noqa: E402

RELEASE = "kubernetes:helm.sh/v3:Release"
STACK = pulumi.get_stack()


def registered(policy: rules.Policy) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation) -> None:
        if args.resource_type != RELEASE or not rules.is_consul_chart(args.props.get("chart")):
            return
        release = rules.Release(STACK, rules.chart_version_of(args.props["chart"], args.props.get("version")),
                                args.props.get("values") or {})
        for violation in policy.rule(release):
            report_violation(violation.message(STACK), args.urn)

    level = EnforcementLevel.MANDATORY if policy.mandatory else EnforcementLevel.ADVISORY
    return ResourceValidationPolicy(name=policy.name, description=policy.description, enforcement_level=level,
                                    validate=validate)


# team.yaml of the pack directory the CLI was given (a copy of the pack may mark other stacks).
production = STACK in rules.production_stacks(os.path.join(os.path.dirname(os.path.abspath(__file__)), rules.TEAM_FILE))
PolicyPack(
    name="consul-federation",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[registered(policy) for policy in rules.policies(pins(), production)],
)
