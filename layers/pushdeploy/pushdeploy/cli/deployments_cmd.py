"""`pushdeploy deployments list|show`: the ledger as an operator reads it (DESIGN 4.4).

`list --service` takes an ARN or a service name, and says so when it matches no service pushdeploy knows;
`--since DURATION` keeps the recent ones. `show` shows the change deployed (repository, tag and digest, or
branch and commit) and the timeline: pushed (or asked), decided, started, settled, with the durations.
"""

from __future__ import annotations

import argparse
import itertools
import json
from datetime import datetime, timedelta
from typing import Any

from pushdeploy import installation
from pushdeploy.adapters.ledger import Ledger
from pushdeploy.cli import engine
from pushdeploy.cli.context import InputError, add_target_options, resolve
from pushdeploy.domain.deployments import Deployment, Status, iso
from pushdeploy.installation import Target, TargetError


def register(commands: Any) -> None:
    parser = commands.add_parser("deployments", help="read the deployment ledger")
    actions = parser.add_subparsers(dest="deployments_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="deployments, newest first")
    listing.add_argument(
        "--service",
        metavar="SERVICE",
        help="only this App Runner service: its ARN, or the name of exactly one known service",
    )
    listing.add_argument("--status", choices=[str(s) for s in Status], help="only this status")
    listing.add_argument(
        "--since",
        type=_since,
        metavar="DURATION",
        help="only those created in the last 90s, 30m, 2h, 7d, 1w...",
    )
    listing.add_argument("--limit", type=_limit, default=50, metavar="N", help="at most N (default 50)")
    listing.add_argument("--json", action="store_true", help="a JSON array, the ledger contract's shape")
    add_target_options(listing)
    listing.set_defaults(handler=run_list)

    show = actions.add_parser(
        "show",
        help="one deployment: the change it deploys, its timeline and the decisions behind it",
    )
    show.add_argument("id", metavar="ID", help="a deployment id (deployments list shows them)")
    show.add_argument(
        "--json",
        action="store_true",
        help="one JSON object: the ledger contract's fields, the change, the decisions, the timeline",
    )
    add_target_options(show)
    show.set_defaults(handler=run_show)


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def _since(text: str) -> str:
    try:
        engine.duration(text)
    except TargetError as invalid:
        raise argparse.ArgumentTypeError(str(invalid)) from None
    return text.strip()


def ledger(args: argparse.Namespace) -> Ledger:
    return _ledger(resolve(args))


def _ledger(target: Target) -> Ledger:
    return Ledger(target.client("dynamodb"), target.output("LedgerTableName"))


def select(
    book: Ledger,
    service: str | None,
    status: str | None,
    limit: int,
    since: datetime | None = None,
) -> list[Deployment]:
    """Newest first; every filter is an indexed query. `since` keeps those created since then: the
    newest `limit` of all, cut at `since`, are the newest `limit` since then."""
    if limit < 1:
        raise InputError("--limit must be at least 1")
    if service:
        found = book.for_service(service, limit=None if status else limit)
        if status:
            found = [d for d in found if d.status == status]
    elif status:
        found = book.with_status(Status(status), limit)
    else:
        found = book.recent(limit)
    if since is not None:
        found = [d for d in found if d.created_at >= since]
    return found[:limit]


def run_list(args: argparse.Namespace) -> int:
    target = resolve(args)
    book = _ledger(target)
    since = installation.now() - engine.duration(args.since) if args.since else None
    service = _service(target, args.service) if args.service else None
    deployments = select(book, service, args.status, args.limit, since)
    if service is not None and not deployments and service not in engine.known_services(target):
        raise TargetError(
            f"no known service {service}: no rule names it and pushdeploy never deployed to it "
            "(`pushdeploy status` lists the services pushdeploy knows)"
        )
    if args.json:
        print(json.dumps([d.public_view() for d in deployments], indent=2))
        return 0
    print(render_table(deployments) if deployments else _nothing(service, args.status, args.since))
    return 0


def _service(target: Target, given: str) -> str:
    """An ARN as given (checked only when it finds nothing), or the one known service of that name."""
    return engine.service_arn(target, given)


def _nothing(service: str | None, status: str | None, since: str | None) -> str:
    words = ["no deployments"]
    if status:
        words.append(f"with status {status}")
    if service:
        words.append(f"of {_name(service)}")
    if since:
        words.append(f"in the last {since}")
    return " ".join(words)


def render_table(deployments: list[Deployment]) -> str:
    if not deployments:
        return "no deployments"
    rows = [("CREATED", "STATUS", "RULE", "SERVICE", "WHAT", "ID")]
    for d in deployments:
        rows.append(
            (
                iso(d.created_at) or "",
                f"held ({', '.join(d.held_by)})" if d.status is Status.HELD and d.held_by else str(d.status),
                d.rule or d.trigger,
                _name(d.service),
                _what(d),
                d.id,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _what(d: Deployment) -> str:
    if d.digest:
        return f"{d.tag or '-'} {d.digest[:19]}"
    if d.commit:
        return f"{d.branch or '-'} {d.commit[:12]}"
    if d.branch:
        return f"{d.branch} (as configured)"
    return "(as configured)"


def _name(service: str) -> str:
    parts = service.split("/")
    return parts[1] if len(parts) == 3 else service


# --- show ------------------------------------------------------------------------------------------


def run_show(args: argparse.Namespace) -> int:
    book = ledger(args)
    deployment = book.deployment(args.id.strip())
    if deployment is None:
        raise TargetError(f"no deployment {args.id}")
    change = (book.change(deployment.change_id, from_decisions=True) if deployment.change_id else None) or {}
    shown = {
        **deployment.public_view(),
        "change": change.get("change"),
        "decisions": change.get("decisions"),
        "timeline": timeline_view(deployment),
    }
    if args.json:
        print(json.dumps(shown, indent=2, default=str))
        return 0
    print(render_details(deployment, shown))
    return 0


def timeline(deployment: Deployment) -> list[tuple[str, datetime | None]]:
    """Pushed (for an operator's deployment: when it was asked for), decided, started, settled."""
    return [
        ("pushed", deployment.pushed_at),
        ("decided", deployment.created_at),
        ("started", deployment.started_at),
        ("settled", deployment.settled_at),
    ]


def timeline_view(deployment: Deployment) -> dict[str, Any]:
    """The timeline as JSON: each moment (ISO 8601 UTC or null) and the seconds between them."""
    moments = timeline(deployment)
    seconds: dict[str, float | None] = {}
    for (earlier, before), (name, after) in itertools.pairwise(moments):
        seconds[f"{earlier}_to_{name}"] = _seconds(before, after)
    first = next((moment for _, moment in moments if moment is not None), None)
    seconds["total"] = _seconds(first, deployment.settled_at)
    return {**{name: iso(moment) for name, moment in moments}, "seconds": seconds}


def _seconds(before: datetime | None, after: datetime | None) -> float | None:
    if before is None or after is None:
        return None
    return round((after - before).total_seconds(), 3)


def render_details(deployment: Deployment, shown: dict[str, Any]) -> str:
    d = deployment
    lines = [
        f"deployment  {d.id}",
        f"service     {_name(d.service)}  {d.service}",
        f"status      {d.status}" + (f"  ({d.detail})" if d.detail else ""),
        f"action      {d.action}  (rule {d.rule or '-'}, trigger {d.trigger})",
        f"change      {_change_text(d, shown.get('change'))}",
    ]
    if d.image:
        lines.append(f"image       {d.image}")
    lines.append(f"reason      {d.reason}")
    if d.operation_id:
        operation = f"  {d.operation_status}" if d.operation_status else ""
        lines.append(f"operation   {d.operation_id}{operation}")
    if d.actor:
        lines.append(f"actor       {d.actor}")
    if d.held_by:
        lines.append(f"held by     {', '.join(d.held_by)}")
    lines.extend(_gate_fact_lines(d.gate_facts))
    if d.superseded_by:
        lines.append(f"replaced by {d.superseded_by}")
    lines.append("timeline")
    lines.extend(_timeline_lines(d))
    decisions = shown.get("decisions") or []
    if decisions:
        lines.append("decisions")
    for decision in decisions:
        lines.append(f"  {decision.get('rule')}: {decision.get('action')}: {decision.get('reason')}")
    return "\n".join(lines)


def _gate_fact_lines(facts: dict[str, Any]) -> list[str]:
    """What its gates were told: the scan's counts, who approved or rejected it and why."""
    lines = []
    scan = facts.get("scan")
    if scan:
        counts = (
            ", ".join(f"{n} {s.lower()}" for s, n in sorted(scan.get("counts", {}).items())) or "no findings"
        )
        lines.append(f"scan        {scan.get('status')}: {counts} ({scan.get('at')})")
    approval = facts.get("approval")
    if approval:
        verdict = "approved" if approval.get("approved") else "rejected"
        why = f": {approval['reason']}" if approval.get("reason") else ""
        lines.append(f"approval    {verdict} by {approval.get('by') or '-'} at {approval.get('at')}{why}")
    return lines


def _change_text(d: Deployment, change: Any) -> str:
    """Repository, then tag and digest (an image) or branch and commit (code)."""
    where = f" ({d.account}, {d.region})" if d.account and d.region else ""
    source = d.source if d.source != "manual" else f"no push ({d.trigger}):"
    if d.digest:
        return f"{source} {d.repository}{where}  tag {d.tag or '(untagged)'}  digest {d.digest}"
    if d.commit:
        return f"{source} {d.repository}{where}  branch {d.branch or '-'}  commit {d.commit}"
    if isinstance(change, dict) and change.get("repository"):
        return f"{change.get('source')} {change['repository']}"
    configured = d.configured or d.image or d.repository or "-"
    return f"{source} what the service is configured with, {configured}"


def _timeline_lines(d: Deployment) -> list[str]:
    lines: list[str] = []
    previous: datetime | None = None
    first: datetime | None = None
    for name, moment in timeline(d):
        if name == "pushed" and d.source == "manual":
            name = "asked"  # an operator's deployment: no push, a request
        if moment is None:
            pending = "not yet" if name in ("started", "settled") and d.settled_at is None else "-"
            lines.append(f"  {name:<9} {pending}")
            continue
        step = f"  +{_duration(moment - previous)}" if previous is not None else ""
        lines.append(f"  {name:<9} {iso(moment)}{step}")
        previous = moment
        first = first or moment
    if first is not None and d.settled_at is not None:
        lines.append(f"  {'total':<9} {_duration(d.settled_at - first)}")
    return lines


def _duration(span: timedelta) -> str:
    """`850ms`, `12s`, `3m05s`, `1h02m`; a negative span (clocks apart) as such."""
    total = span.total_seconds()
    sign = "-" if total < 0 else ""
    total = abs(total)
    if total < 1:
        return f"{sign}{int(total * 1000)}ms"
    seconds = int(total)
    if seconds < 60:
        return f"{sign}{seconds}s"
    if seconds < 3600:
        return f"{sign}{seconds // 60}m{seconds % 60:02d}s"
    return f"{sign}{seconds // 3600}h{seconds % 3600 // 60:02d}m"
