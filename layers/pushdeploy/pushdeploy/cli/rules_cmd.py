"""`pushdeploy rules ...`: validate a rules file offline."""

from __future__ import annotations

import argparse
from typing import Any

from pushdeploy.domain.rules import build_index, load_rules_file


def register(commands: Any) -> None:
    parser = commands.add_parser("rules", help="validate, apply and list deployment rules")
    actions = parser.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    validate = actions.add_parser("validate", help="check a rules file; every problem on its own line")
    validate.add_argument("file", metavar="FILE")
    validate.set_defaults(handler=run_validate)


def run_validate(args: argparse.Namespace) -> int:
    index = build_index(load_rules_file(args.file))
    sources = len({rule.key for rule in index.rules})
    print(f"{args.file}: {len(index)} rules watching {sources} sources: valid")
    return 0
