"""`pushdeploy deployments list|show`: the ledger as an operator reads it (DESIGN 4.4)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pushdeploy.adapters.ledger import Ledger
from pushdeploy.cli.context import TargetError, add_target_options, resolve
from pushdeploy.domain.deployments import Deployment, Status, iso


def register(commands: Any) -> None:
    parser = commands.add_parser("deployments", help="read the deployment ledger")
    actions = parser.add_subparsers(dest="deployments_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="deployments, newest first")
    listing.add_argument("--service", metavar="ARN", help="only this App Runner service")
    listing.add_argument("--status", choices=[str(s) for s in Status], help="only this status")
    listing.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (default 50)")
    listing.add_argument("--json", action="store_true", help="a JSON array, the ledger contract's shape")
    add_target_options(listing)
    listing.set_defaults(handler=run_list)

    show = actions.add_parser("show", help="one deployment, with the change and decisions behind it")
    show.add_argument("id", metavar="ID")
    show.add_argument("--json", action="store_true")
    add_target_options(show)
    show.set_defaults(handler=run_show)


def ledger(args: argparse.Namespace) -> Ledger:
    target = resolve(args)
    return Ledger(target.client("dynamodb"), target.output("LedgerTableName"))


def select(book: Ledger, service: str | None, status: str | None, limit: int) -> list[Deployment]:
    """Newest first; every filter is an indexed query."""
    if limit < 1:
        raise TargetError("--limit must be at least 1")
    if service:
        found = book.for_service(service, limit=None if status else limit)
        if status:
            found = [d for d in found if d.status == status]
    elif status:
        found = book.with_status(Status(status), limit)
    else:
        found = book.recent(limit)
    return found[:limit]


def run_list(args: argparse.Namespace) -> int:
    deployments = select(ledger(args), args.service, args.status, args.limit)
    if args.json:
        print(json.dumps([d.public_view() for d in deployments], indent=2))
        return 0
    print(render_table(deployments))
    return 0


def render_table(deployments: list[Deployment]) -> str:
    if not deployments:
        return "no deployments"
    rows = [("CREATED", "STATUS", "RULE", "SERVICE", "WHAT", "ID")]
    for d in deployments:
        what = (
            f"{d.tag or '-'} {d.digest[:19] if d.digest else ''}"
            if d.digest
            else f"{d.branch} {d.commit and d.commit[:12]}"
        )
        rows.append(
            (
                iso(d.created_at) or "",
                str(d.status),
                d.rule or d.trigger,
                d.service.rsplit("/", 2)[-2],
                what,
                d.id,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows
    )


def run_show(args: argparse.Namespace) -> int:
    book = ledger(args)
    deployment = book.deployment(args.id)
    if deployment is None:
        raise TargetError(f"no deployment {args.id}")
    change = (book.change(deployment.change_id) if deployment.change_id else None) or {}
    shown = {**deployment.public_view(), "change": change.get("change"), "decisions": change.get("decisions")}
    if args.json:
        print(json.dumps(shown, indent=2, default=str))
        return 0
    for name, value in shown.items():
        if name not in ("change", "decisions") and value is not None:
            print(f"{name:18} {value}")
    for decision in shown["decisions"] or []:
        print(f"decision {decision['rule']}: {decision['action']}: {decision['reason']}")
    return 0
