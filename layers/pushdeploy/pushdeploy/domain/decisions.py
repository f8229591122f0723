"""Decisions: for each rule that watches a change, deploy (and how) or not, always with a reason."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from pushdeploy.domain.changes import Change
from pushdeploy.domain.rules import CompiledRule, RuleIndex

DecisionAction = Literal["start_deployment", "update_service", "none"]

# Longer names are never matched: an image tag is at most 128 characters in a registry (the OCI
# distribution spec, and ECR); 255 bounds a branch name. Nothing longer is a real push worth matching,
# and a bound keeps every matcher's work small.
MAX_TAG_LENGTH = 128
MAX_BRANCH_LENGTH = 255


class Decision(BaseModel):
    """One rule's verdict on one change. Field names are the `explain --json` contract (DESIGN 4.2)."""

    model_config = ConfigDict(frozen=True)

    rule: str
    service: str
    action: DecisionAction
    image: str | None = None
    dry_run: bool = False
    reason: str

    @property
    def deploys(self) -> bool:
        return self.action != "none"


def decide_rule(change: Change, rule: CompiledRule) -> Decision:
    """The decision of one rule that watches `change` (the caller found it through the index)."""
    if change.kind == "image":
        return _decide_image(change, rule)
    branch = change.branch or ""
    if len(branch) > MAX_BRANCH_LENGTH:
        return _decision(rule, "none", None, _too_long("branch", branch, "the limit", MAX_BRANCH_LENGTH))
    matched, reason = rule.matcher.match(branch)
    return _decision(rule, "start_deployment" if matched else "none", None, reason)


def _decide_image(change: Change, rule: CompiledRule) -> Decision:
    if change.tag is None:
        return _decision(rule, "none", None, "untagged push: the rule selects images by tag")
    if len(change.tag) > MAX_TAG_LENGTH:
        reason = _too_long("tag", change.tag, "the registry's limit", MAX_TAG_LENGTH)
        return _decision(rule, "none", None, reason)
    matched, reason = rule.matcher.match(change.tag)
    if not matched:
        return _decision(rule, "none", None, reason)
    if rule.action == "start_deployment":
        return _decision(rule, "start_deployment", None, reason)
    return _decision(rule, "update_service", f"{rule.image_prefix}@{change.digest}", reason)


def _too_long(subject: str, name: str, limit_name: str, limit: int) -> str:
    # Without the name itself: it is too long to read, and it is whatever the sender chose.
    return f"{subject} is {len(name)} characters long, longer than {limit_name} of {limit}: ignored"


def _decision(rule: CompiledRule, action: DecisionAction, image: str | None, reason: str) -> Decision:
    return Decision(
        rule=rule.id,
        service=rule.service.arn,
        action=action,
        image=image,
        dry_run=rule.rule.dry_run,
        reason=reason,
    )


def decide(change: Change, rules: RuleIndex | Iterable[CompiledRule]) -> list[Decision]:
    """One decision per rule that watches the change, in rule order; the same input decides the same."""
    watching = rules.watching(change) if isinstance(rules, RuleIndex) else rules
    return [decide_rule(change, rule) for rule in watching]
