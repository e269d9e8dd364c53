"""The policy pack: every rule of baseline.py as a mandatory policy (Pulumi CrossGuard).

Pulumi runs this file as `__main__` (python -m pulumi.policy runs the pack's directory), with
the directory first on sys.path; constructing PolicyPack then serves the policies to the
engine until it is stopped. Imported under any other name, it only defines `policies()`.
"""

from __future__ import annotations

from baseline import RULES, STACK_RULES, Resource, Rule, StackRule
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

NAME = "kube-image-processing-baseline"


def _validate_resource(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        resource = Resource(args.resource_type, args.name, args.props, args.urn)
        for message in rule.violations(resource):
            report_violation(message, None)

    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


def _validate_stack(rule: StackRule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [Resource(r.resource_type, r.name, r.props, r.urn) for r in args.resources]
        for resource, message in rule.violations(resources):
            report_violation(message, resource.urn)

    return StackValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


def policies() -> list[Policy]:
    """Every rule, wrapped: one policy per rule, each mandatory."""
    return [
        *(_validate_resource(rule) for rule in RULES),
        *(_validate_stack(rule) for rule in STACK_RULES),
    ]


if __name__ == "__main__":
    PolicyPack(name=NAME, policies=policies(), enforcement_level=EnforcementLevel.MANDATORY)
