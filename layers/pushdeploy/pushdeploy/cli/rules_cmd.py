"""`pushdeploy rules validate|apply|list`: check a rules file offline, install it, show what is installed.

`rules apply` refuses the whole file, one line per problem as for an invalid file, when a rule does not fit
its service as App Runner describes it (DESIGN 4.6): the service does not exist; it is of the other kind
(an image rule on a code service or the reverse); it is in automatic deployment mode (App Runner would
deploy every push as well: `--take-over` switches it to manual instead, through its queue); an exact
`tag` rule names a repository or tag the service is not configured with (App Runner's StartDeployment
redeploys what the service is configured with, so the push would "succeed" without being deployed); a
code rule names another repository or branch than the service's. A file with no rules, which would remove
every installed rule, is refused unless `--allow-empty`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pushdeploy import installation
from pushdeploy.adapters.apprunner import ServiceView, TargetGone
from pushdeploy.adapters.rules_store import RulesDiff, RulesStore, diff_rules
from pushdeploy.cli.context import add_target_options, resolve
from pushdeploy.domain.changes import partition_of_region
from pushdeploy.domain.rules import Rule, ServiceArn, build_index, compile_rule, load_rules_file
from pushdeploy.errors import PushdeployError, RulesError
from pushdeploy.installation import Target
from pushdeploy.operators import parse_image_identifier

# Statuses of a service that is as good as absent: it will never run a deployment.
_ABSENT_STATUSES = frozenset({"DELETED", "CREATE_FAILED", "DELETE_FAILED"})
_CASE_INSENSITIVE_PROVIDERS = frozenset({"github", "bitbucket"})


def register(commands: Any) -> None:
    parser = commands.add_parser("rules", help="validate, apply and list deployment rules")
    actions = parser.add_subparsers(dest="rules_command", required=True, metavar="ACTION")

    validate = actions.add_parser(
        "validate", help="check a rules file offline; every problem on its own line"
    )
    validate.add_argument("file", metavar="FILE", help="the rules file (YAML, version 1)")
    validate.set_defaults(handler=run_validate)

    apply = actions.add_parser(
        "apply",
        help="check a rules file whole against App Runner, show what changes, install it",
        description="Validates the file and checks each rule's service with DescribeService: a service "
        "that does not exist, is of the other kind, is in automatic deployment mode, is configured with "
        "another tag than an exact tag rule names, or deploys another repository or branch than a code "
        "rule names refuses the whole file. Then installs it and shows each changed field.",
    )
    apply.add_argument("file", metavar="FILE", help="the rules file (YAML, version 1)")
    apply.add_argument(
        "--dry-run", action="store_true", help="check and show what would change, change nothing"
    )
    apply.add_argument(
        "--take-over",
        action="store_true",
        help="switch services in automatic deployment mode to manual (through their queue) instead of "
        "refusing them",
    )
    apply.add_argument(
        "--allow-empty", action="store_true", help="apply a file with no rules: remove every installed rule"
    )
    add_target_options(apply)
    apply.set_defaults(handler=run_apply)

    listing = actions.add_parser("list", help="the rules installed")
    listing.add_argument("--json", action="store_true", help="a JSON array of the rules as installed")
    add_target_options(listing)
    listing.set_defaults(handler=run_list)


def run_validate(args: argparse.Namespace) -> int:
    index = build_index(load_rules_file(args.file))
    sources = len({rule.key for rule in index.rules})
    print(f"{args.file}: {len(index)} rules watching {sources} sources: valid")
    return 0


def _store(target: Target) -> RulesStore:
    return RulesStore(target.client("dynamodb"), target.output("RulesTableName"))


# --- apply -----------------------------------------------------------------------------------------


def run_apply(args: argparse.Namespace) -> int:
    wanted = load_rules_file(args.file)  # refused whole, before anything is touched
    target = resolve(args)
    store = _store(target)
    current = store.all_rules()
    if not wanted and current and not args.allow_empty:
        raise RulesError(
            [
                f"rules file: rules: the file has no rules: applying it would remove all {len(current)} "
                "installed rules; add --allow-empty to do that"
            ]
        )
    checked = check_services(
        wanted, installation.controller(target).target.describe, take_over=args.take_over
    )
    if checked.problems:
        raise RulesError(checked.problems)
    if args.dry_run:
        print(describe_diff(diff_rules(current, wanted), applied=False, current=current))
        for service in checked.automatic:
            print(f"would take over {_name(service)}: switch it to manual deployment, through its queue")
        return 0
    print(describe_diff(store.apply(current, wanted), applied=True, current=current))
    return take_over(target, checked.automatic)


def take_over(target: Target, services: Sequence[str]) -> int:
    """Switch each service to manual deployment through its queue (trigger take-over, recorded)."""
    if not services:
        return 0
    operator = installation.operator(target)
    actor = installation.caller(target)
    refused = 0
    for service in services:
        try:
            deployment = operator.take_over(service, actor=actor)
        except PushdeployError as error:
            refused += 1
            print(f"error: cannot take over {_name(service)}: {error}", file=sys.stderr)
            continue
        print(
            f"taking over {_name(service)}: switching it to manual deployment through its queue "
            f"(deployment {deployment.id}, {deployment.status}); from now on only pushdeploy deploys it"
        )
    return 1 if refused else 0


@dataclass
class ServiceCheck:
    """What the services said: one line per problem (as RulesError words them), and the services in
    automatic deployment mode that `--take-over` switches to manual."""

    problems: list[str] = field(default_factory=list)
    automatic: list[str] = field(default_factory=list)


def check_services(
    rules: Iterable[Rule], describe: Callable[[str], ServiceView], *, take_over: bool = False
) -> ServiceCheck:
    """Check each rule against its service as DescribeService shows it (each service described once)."""
    views: dict[str, ServiceView | str] = {}
    checked = ServiceCheck()
    for rule in rules:
        if rule.service not in views:
            views[rule.service] = _describe(describe, rule.service)
        view = views[rule.service]
        label = f"rule {rule.id}"
        if isinstance(view, str):
            checked.problems.append(f"{label}: service: {view}")
            continue
        problems = rule_problems(rule, view)
        if view.auto_deployments:
            if take_over:
                if rule.service not in checked.automatic:
                    checked.automatic.append(rule.service)
            else:
                problems.insert(
                    0,
                    (
                        "service",
                        f"{_name(rule.service)} is in automatic deployment mode (AutoDeploymentsEnabled): "
                        "App Runner would deploy every push as well; switch it to manual, or apply with "
                        "--take-over",
                    ),
                )
        checked.problems.extend(f"{label}: {where}: {problem}" for where, problem in problems)
    return checked


def _describe(describe: Callable[[str], ServiceView], service: str) -> ServiceView | str:
    """The service's view, or why there is none (it does not exist)."""
    try:
        view = describe(service)
    except TargetGone:
        return f"no App Runner service {service}: is the ARN right, and was the service created?"
    if view.status in _ABSENT_STATUSES:
        return f"the App Runner service {_name(service)} is {view.status}: it will never deploy again"
    return view


def rule_problems(rule: Rule, view: ServiceView) -> list[tuple[str, str]]:
    """(field, problem) for each way the rule does not fit the service, automatic mode aside."""
    name = _name(rule.service)
    if rule.image is not None:
        if view.is_code:
            return [
                (
                    "image",
                    f"{name} deploys from code ({view.repository_url}, branch {view.branch}): "
                    "a rule for it needs a code source",
                )
            ]
        return _tag_problems(rule, view) if rule.image.tag is not None else []
    if not view.is_code:
        return [("code", f"{name} runs an image ({view.image}): a rule for it needs an image source")]
    return _code_problems(rule, view)


def _tag_problems(rule: Rule, view: ServiceView) -> list[tuple[str, str]]:
    """An exact tag rule deploys with StartDeployment, which redeploys what the service is configured
    with: the service must be configured with that repository and tag."""
    image = rule.image
    assert image is not None
    assert image.tag is not None
    service = ServiceArn.parse(rule.service)
    name = _name(rule.service)
    account, region = image.account or service.account, image.region or service.region
    wanted = f"{image.repository}:{image.tag}"
    configured = parse_image_identifier(view.image or "")
    if configured is None:
        return [
            (
                "image.repository",
                f"{name} runs {view.image}, not an image of a private ECR repository: a tag rule "
                "redeploys what the service is configured with, so it would never deploy a push",
            )
        ]
    if (configured.repository, configured.account, configured.region) != (image.repository, account, region):
        return [
            (
                "image.repository",
                f"{name} is configured with {view.image}, not {image.repository} ({account}, {region}): "
                f"a push of {wanted} would redeploy what the service runs, not the push",
            )
        ]
    if configured.digest is not None:
        return [
            (
                "image.tag",
                f"{name} is pinned to {configured.repository}@{configured.digest[:19]}..., not tag "
                f"{image.tag}: StartDeployment would redeploy that digest (use tag_glob, tag_regex or "
                "semver to deploy pushes by digest)",
            )
        ]
    tag = configured.tag or "latest"  # an identifier without a tag means latest
    if tag != image.tag:
        return [
            (
                "image.tag",
                f"{name} is configured with {configured.repository}:{tag}, not {wanted}: a push of "
                f"{image.tag} would redeploy {tag} (use tag: {tag}, or tag_glob, tag_regex or semver "
                "to deploy the pushed digest)",
            )
        ]
    return []


def _code_problems(rule: Rule, view: ServiceView) -> list[tuple[str, str]]:
    code = rule.code
    assert code is not None
    name = _name(rule.service)
    problems: list[tuple[str, str]] = []
    expected = expected_repository_url(rule)
    if not same_repository(view.repository_url or "", expected, code.provider):
        problems.append(
            (
                "code.repository",
                f"{name} deploys {view.repository_url}, not {expected}: a push to {code.repository} "
                "would redeploy the service's own repository",
            )
        )
    branch = view.branch or ""
    if code.branch is not None and code.branch != branch:
        problems.append(
            (
                "code.branch",
                f"{name} deploys branch {branch}, not {code.branch}: App Runner deploys the head of the "
                "service's branch, whatever was pushed",
            )
        )
    if code.branch_glob is not None and not compile_rule(rule).matcher.match(branch)[0]:
        problems.append(
            (
                "code.branch_glob",
                f"{name} deploys branch {branch}, which {code.branch_glob} does not match: App Runner "
                "deploys the head of the service's branch, whatever was pushed",
            )
        )
    return problems


def expected_repository_url(rule: Rule) -> str:
    """The RepositoryUrl of an App Runner service that deploys the rule's repository."""
    code = rule.code
    assert code is not None
    if code.provider == "github":
        return f"https://github.com/{code.repository}"
    if code.provider == "bitbucket":
        return f"https://bitbucket.org/{code.repository}"
    region = code.region or ServiceArn.parse(rule.service).region
    domain = "amazonaws.com.cn" if partition_of_region(region) == "aws-cn" else "amazonaws.com"
    return f"https://git-codecommit.{region}.{domain}/v1/repos/{code.repository}"


def same_repository(url: str, expected: str, provider: str) -> bool:
    """Whether two repository URLs name one repository: the host in any case, no trailing `/` or `.git`;
    GitHub and Bitbucket paths in any case, as those hosts compare them."""

    def normalized(text: str) -> tuple[str, str]:
        parts = urlsplit(text.strip())
        path = parts.path.rstrip("/").removesuffix(".git").rstrip("/")
        if provider in _CASE_INSENSITIVE_PROVIDERS:
            path = path.lower()
        return (parts.hostname or "").lower(), path

    return normalized(url) == normalized(expected)


# --- the diff --------------------------------------------------------------------------------------


def describe_diff(diff: RulesDiff, applied: bool, current: Sequence[Rule] = ()) -> str:
    """`+` an added rule, `~` one line per changed field (`~ web-prod  image.tag: latest -> stable`),
    `-` a removed rule; then a summary."""
    before = {rule.id: rule for rule in current}
    lines = [f"  + {rule.id}  {rule.service}" for rule in diff.added]
    for rule in diff.changed:
        old = before.get(rule.id)
        changes = field_changes(old, rule) if old is not None else []
        lines += [f"  ~ {rule.id}  {change}" for change in changes] or [f"  ~ {rule.id}  {rule.service}"]
    lines += [f"  - {rule.id}  {rule.service}" for rule in diff.removed]
    verb = "applied" if applied else "would apply"
    summary = (
        f"{verb}: {len(diff.added)} added, {len(diff.changed)} changed, {len(diff.removed)} removed, "
        f"{diff.unchanged} unchanged"
    )
    if diff.empty:
        summary = f"no change: {diff.unchanged} rules already installed"
    return "\n".join([*lines, summary])


def field_changes(old: Rule, new: Rule) -> list[str]:
    """`field: before -> after` for each field that differs, dotted (`image.tag`); `(none)` when unset."""
    before = _flatten(old.model_dump(mode="json", exclude_none=True))
    after = _flatten(new.model_dump(mode="json", exclude_none=True))
    order = [*after, *(name for name in before if name not in after)]
    return [
        f"{name}: {_shown(before.get(name))} -> {_shown(after.get(name))}"
        for name in order
        if before.get(name) != after.get(name)
    ]


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    return value if isinstance(value, str) else json.dumps(value)


def _name(service: str) -> str:
    parts = service.split("/")
    return parts[1] if len(parts) == 3 else service


# --- list ------------------------------------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    rules = _store(resolve(args)).all_rules()
    if args.json:
        print(json.dumps([rule.model_dump(mode="json", exclude_none=True) for rule in rules], indent=2))
        return 0
    for rule in rules:
        print(f"{rule.id:24} {_selector(rule):40} {rule.service}")
    print(f"{len(rules)} rules")
    return 0


def _selector(rule: Rule) -> str:
    if rule.image is not None:
        image = rule.image
        selector = next(
            f"{name}={value}"
            for name in ("tag", "tag_glob", "tag_regex", "semver")
            if (value := getattr(image, name)) is not None
        )
        return f"ecr {image.repository} {selector}"
    code = rule.code
    assert code is not None
    branch = f"branch={code.branch}" if code.branch is not None else f"branch_glob={code.branch_glob}"
    return f"{code.provider} {code.repository} {branch}"
