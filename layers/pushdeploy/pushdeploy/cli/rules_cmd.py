"""`pushdeploy rules validate|apply|list`: check a rules file offline, install it, show what is installed."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pushdeploy.adapters.rules_store import RulesDiff, RulesStore, diff_rules
from pushdeploy.cli.context import add_target_options, resolve
from pushdeploy.domain.rules import Rule, build_index, load_rules_file


def register(commands: Any) -> None:
    parser = commands.add_parser("rules", help="validate, apply and list deployment rules")
    actions = parser.add_subparsers(dest="rules_command", required=True, metavar="ACTION")

    validate = actions.add_parser("validate", help="check a rules file; every problem on its own line")
    validate.add_argument("file", metavar="FILE")
    validate.set_defaults(handler=run_validate)

    apply = actions.add_parser("apply", help="validate a rules file whole, show what changes, install it")
    apply.add_argument("file", metavar="FILE")
    apply.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
    add_target_options(apply)
    apply.set_defaults(handler=run_apply)

    listing = actions.add_parser("list", help="the rules installed")
    listing.add_argument("--json", action="store_true")
    add_target_options(listing)
    listing.set_defaults(handler=run_list)


def run_validate(args: argparse.Namespace) -> int:
    index = build_index(load_rules_file(args.file))
    sources = len({rule.key for rule in index.rules})
    print(f"{args.file}: {len(index)} rules watching {sources} sources: valid")
    return 0


def _store(args: argparse.Namespace) -> RulesStore:
    target = resolve(args)
    return RulesStore(target.client("dynamodb"), target.output("RulesTableName"))


def run_apply(args: argparse.Namespace) -> int:
    wanted = load_rules_file(args.file)  # refused whole, before anything is touched
    store = _store(args)
    current = store.all_rules()
    if args.dry_run:
        print(describe_diff(diff_rules(current, wanted), applied=False))
        return 0
    print(describe_diff(store.apply(current, wanted), applied=True))
    return 0


def describe_diff(diff: RulesDiff, applied: bool) -> str:
    lines = [f"  + {rule.id}  {rule.service}" for rule in diff.added]
    lines += [f"  ~ {rule.id}  {rule.service}" for rule in diff.changed]
    lines += [f"  - {rule.id}  {rule.service}" for rule in diff.removed]
    verb = "applied" if applied else "would apply"
    summary = (
        f"{verb}: {len(diff.added)} added, {len(diff.changed)} changed, {len(diff.removed)} removed, "
        f"{diff.unchanged} unchanged"
    )
    if diff.empty:
        summary = f"no change: {diff.unchanged} rules already installed"
    return "\n".join([*lines, summary])


def run_list(args: argparse.Namespace) -> int:
    rules = _store(args).all_rules()
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
