"""`pushdeploy explain EVENT_FILE --rules RULES_FILE`: decide offline, print why (DESIGN 4.2)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pushdeploy.domain.rules import build_index, load_rules_file
from pushdeploy.errors import EventError
from pushdeploy.explain import explain_event


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "explain",
        help="show what pushdeploy would decide for an event (offline)",
        description="Decide offline: no AWS call, no ledger. EVENT_FILE is an EventBridge event or a raw "
        "webhook body, whose --header options say which provider sent it.",
    )
    parser.add_argument("event_file", metavar="EVENT_FILE")
    parser.add_argument("--rules", required=True, metavar="RULES_FILE")
    parser.add_argument(
        "--header", action="append", default=[], metavar="'Name: value'", help="a webhook delivery header"
    )
    parser.add_argument("--secret", help="webhook secret: check the delivery's signature with it")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.set_defaults(handler=run)


def parse_headers(values: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, separator, content = value.partition(":")
        if not separator or not name.strip():
            raise EventError(f"--header {value!r} is not 'Name: value'")
        headers[name.strip()] = content.strip()
    return headers


def read_event(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise EventError(f"cannot read {path}: {error.strerror}") from None


def run(args: argparse.Namespace) -> int:
    index = build_index(load_rules_file(args.rules))
    headers = parse_headers(args.header)
    result = explain_event(read_event(args.event_file), index, headers, args.secret)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


def render(result: dict[str, Any]) -> str:
    """A readable summary: one block per change, one line per decision."""
    lines: list[str] = []
    if result["signature"] is not None:
        lines.append(f"signature: {result['signature']}")
    if result["operation"] is not None:
        operation = result["operation"]
        lines.append(f"operation: {operation['service']} {operation['status']} -> {operation['outcome']}")
    if result["ignored"] is not None:
        lines.append(f"ignored: {result['ignored']}")
    for change in result["changes"]:
        lines.append(_change_line(change))
        if not change["decisions"]:
            lines.append("  no rule watches this source")
        for decision in change["decisions"]:
            dry = " (dry run)" if decision["dry_run"] else ""
            lines.append(f"  {decision['rule']}: {decision['action']}{dry}: {decision['reason']}")
            lines.append(f"    service {decision['service']}")
            if decision["image"]:
                lines.append(f"    image   {decision['image']}")
            for gate in decision.get("gates") or []:
                lines.append(f"    waits for {gate['gate']}: {gate['waits_for']}")
    return "\n".join(lines)


def _change_line(change: dict[str, Any]) -> str:
    where = f" {change['account']}/{change['region']}" if change["account"] else ""
    if change["kind"] == "image":
        tag = change["tag"] if change["tag"] is not None else "(untagged)"
        return f"image {change['source']}{where} {change['repository']}:{tag} {change['digest']}"
    return f"commit {change['source']}{where} {change['repository']} {change['branch']} {change['commit']}"
