"""`pushdeploy changes list|show`: every push pushdeploy heard of, deployed or not, with every decision and
its reason: the answer to "why didn't my push deploy?"."""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime
from typing import Any

from pushdeploy.adapters.ledger import Ledger
from pushdeploy.cli.context import add_target_options, resolve
from pushdeploy.cli.engine import duration, public
from pushdeploy.installation import TargetError

_CHANGE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def register(commands: Any) -> None:
    parser = commands.add_parser("changes", help="pushes pushdeploy heard of, deployed or not, and why")
    actions = parser.add_subparsers(dest="changes_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="changes, newest first")
    listing.add_argument(
        "--since", metavar="DURATION", help="only those received in the last 90s, 30m, 2h, 7d..."
    )
    listing.add_argument("--repository", metavar="NAME", help="only pushes to this repository")
    listing.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (default 50)")
    listing.add_argument("--json", action="store_true", help="a JSON array of change records")
    add_target_options(listing)
    listing.set_defaults(handler=run_list)

    show = actions.add_parser("show", help="one change with every decision and what became of it")
    show.add_argument(
        "key", metavar="CHANGE_ID|DIGEST|COMMIT", help="a change id, an image digest or a commit id"
    )
    show.add_argument("--json", action="store_true", help="a JSON array: every change that matches")
    add_target_options(show)
    show.set_defaults(handler=run_show)


def _ledger(args: argparse.Namespace) -> Ledger:
    target = resolve(args)
    return Ledger(target.client("dynamodb"), target.output("LedgerTableName"))


def run_list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise TargetError("--limit must be at least 1")
    since = datetime.now(UTC) - duration(args.since) if args.since else None
    book = _ledger(args)
    wanted = args.repository.lower() if args.repository else None
    found = []
    for record in book.changes(since, limit=None if wanted else args.limit):
        repository = str((record.get("change") or {}).get("repository", ""))
        if wanted is None or repository.lower() == wanted:
            found.append(public(record))
        if len(found) >= args.limit:
            break
    if args.json:
        print(json.dumps(found, indent=2, default=str))
        return 0
    print(_table(found) if found else "no changes")
    return 0


def run_show(args: argparse.Namespace) -> int:
    book = _ledger(args)
    key = args.key.strip()
    if _CHANGE_ID.match(key):
        record = book.change(key, from_decisions=True)
        records = [record] if record else []
    else:
        records = book.changes_of_artifact(key, limit=None)
    if not records:
        raise TargetError(f"no change {key}: no push of that change id, digest or commit was recorded")
    shown = [public(record) for record in records]
    if args.json:
        print(json.dumps(shown, indent=2, default=str))
        return 0
    print("\n\n".join(_details(record) for record in shown))
    return 0


def _what(change: dict[str, Any]) -> tuple[str, str]:
    if change.get("kind") == "image":
        return str(change.get("tag") or "(untagged)"), str(change.get("digest") or "")[:19]
    return str(change.get("branch") or ""), str(change.get("commit") or "")[:12]


def _table(records: list[dict[str, Any]]) -> str:
    rows = [("RECEIVED", "SOURCE", "REPOSITORY", "TAG/BRANCH", "ARTIFACT", "DEPLOYED", "CHANGE")]
    for record in records:
        change = record.get("change") or {}
        name, artifact = _what(change)
        deployed = sum(1 for d in record.get("decisions") or [] if d.get("deployment"))
        rows.append(
            (
                str(record.get("received_at", ""))[:19],
                str(change.get("source", "")),
                str(change.get("repository", "")),
                name,
                artifact,
                str(deployed) if record.get("decisions") else "-",
                str(record.get("change_id", "")),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)


def _details(record: dict[str, Any]) -> str:
    change = record.get("change") or {}
    name, _ = _what(change)
    lines = [
        f"change      {record.get('change_id')}",
        f"pushed      {change.get('source')} {change.get('repository')} {name} "
        f"{change.get('digest') or change.get('commit') or ''}".rstrip(),
        f"received    {record.get('received_at')}",
    ]
    if record.get("pushed_at"):
        lines.append(f"pushed at   {record['pushed_at']}")
    if record.get("trigger") not in (None, "push"):
        lines.append(f"trigger     {record['trigger']}")
    if record.get("note"):
        lines.append(f"note        {record['note']}")
    decisions = record.get("decisions") or []
    if not decisions and not record.get("note"):
        lines.append("decisions   none: no rule watches this repository")
    for decision in decisions:
        outcome = decision.get("deployment") and f"deployment {decision['deployment']}"
        lines.append(f"rule {decision.get('rule')}: {decision.get('action')}: {decision.get('reason')}")
        if decision.get("note") and decision.get("note") != decision.get("reason"):
            lines.append(f"    {decision['note']}")
        if outcome:
            lines.append(f"    {outcome}")
    return "\n".join(lines)
