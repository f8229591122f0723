"""`pushdeploy push-image` and `pushdeploy push-commit`: make a push happen, as its source reports it.

- `push-image REPO[:TAG]` (local cloud only): ECR PutImage of a new image, then the `ECR Image Action`
  event ECR would emit (on AWS, `docker push` does both). `--lose-event`: the image only, its event never
  sent (as AWS, rarely, loses one), which only a sweep can find.
- `push-commit codecommit REPO BRANCH [COMMIT]` (local cloud only): the `CodeCommit Repository State
  Change` event of a branch update (on AWS, `git push` does it).
- For both, `--account ID` and `--region R` (local cloud): the push happens in that account and Region,
  with its credentials, and its event reaches pushdeploy's bus through the forwarder
  (`forwarder/template.yaml`), as on AWS; refused, before anything is pushed, when pushdeploy's bus policy
  does not admit the account (the `SourceAccountIds` parameter).
- `push-commit github|bitbucket REPO BRANCH [COMMIT]`: a push delivery signed with the webhook's secret,
  POSTed to the webhook with the host's real headers. Works on AWS too: a smoke test of the webhook.

Each says when no rule watches the repository (a note on stderr; `watched_by` in the `--json` object, or
the webhook's answer), and `--json` prints one JSON object. A malformed REPO[:TAG] is one line, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pushdeploy.adapters.rules_store import RulesStore
from pushdeploy.cli.context import InputError, add_target_options, resolve
from pushdeploy.cli.local_cmd import account_id
from pushdeploy.domain.changes import source_key
from pushdeploy.domain.rules import compile_rule
from pushdeploy.installation import Target, TargetError
from pushdeploy.local import pushes
from pushdeploy.local.accounts import home
from pushdeploy.local.forwarding import Forwarding
from pushdeploy.local.sending import (
    push_codecommit,
    push_codecommit_in,
    push_image,
    push_image_in,
    push_webhook,
    put_image,
)


def register(commands: Any) -> None:
    image = commands.add_parser(
        "push-image",
        help="push a new image to ECR and emit ECR's push event (local cloud)",
        description="ECR PutImage of a new image (a new digest every time) plus the `ECR Image Action` "
        "event ECR emits. Prints the digest.",
    )
    image.add_argument("image", metavar="REPO[:TAG]", help="repository and tag; no tag is an untagged push")
    image.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: repository, tag, digest, account, region, event, watched_by",
    )
    image.add_argument(
        "--lose-event",
        action="store_true",
        help="put the image but never send its event, as AWS rarely loses one (local cloud)",
    )
    _source_option(image)
    add_target_options(image)
    image.set_defaults(handler=run_push_image)

    commit = commands.add_parser(
        "push-commit",
        help="push a commit: CodeCommit's event, or a signed GitHub/Bitbucket delivery to the webhook",
    )
    commit.add_argument(
        "provider",
        choices=["codecommit", "github", "bitbucket"],
        metavar="PROVIDER",
        help="codecommit (local cloud: CodeCommit's event), github or bitbucket (a signed webhook delivery)",
    )
    commit.add_argument(
        "repository", metavar="REPO", help="owner/name (github, bitbucket); name (codecommit)"
    )
    commit.add_argument("branch", metavar="BRANCH", help="the branch pushed to, e.g. main")
    commit.add_argument("commit", nargs="?", metavar="COMMIT", help="commit id (default: a new random one)")
    commit.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (with the webhook's answer as an object, not a string)",
    )
    _source_option(commit)
    add_target_options(commit)
    commit.set_defaults(handler=run_push_commit)


def _source_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--account",
        type=account_id,
        help="push in this account (local cloud; default its own): the event comes through the "
        "forwarder; --region, if given, is the Region pushed in",
    )


def _local_only(args: argparse.Namespace, what: str, instead: str) -> None:
    if not args.local:
        raise TargetError(f"{what} acts on the local cloud only (add --local); on AWS, {instead}")


def split_image(reference: str) -> tuple[str, str | None]:
    """`web:v1` -> ("web", "v1"); `team/web` -> ("team/web", None). Anything else is one line of error."""
    try:
        return pushes.parse_image_reference(reference)
    except ValueError as invalid:
        raise InputError(str(invalid)) from None


def watching_rules(
    target: Target, source: str, repository: str, account: str | None, region: str | None
) -> list[str]:
    """The ids of the installed rules that watch a repository (DESIGN 4.1), whatever they match."""
    wanted = source_key(source, repository, account, region)
    store = RulesStore(target.client("dynamodb"), target.output("RulesTableName"))
    return [rule.id for rule in store.all_rules() if compile_rule(rule).key == wanted]


def _unwatched_note(args: argparse.Namespace, what: str, watchers: list[str]) -> None:
    if not watchers and not args.json:
        print(
            f"note: no rule watches {what}: nothing will deploy this push "
            "(`pushdeploy rules list` shows the rules)",
            file=sys.stderr,
        )


def run_push_image(args: argparse.Namespace) -> int:
    if args.lose_event:
        _local_only(args, "push-image --lose-event", "ECR loses an event by chance only")
    _local_only(args, "push-image", "docker push does it and ECR emits the event itself")
    repository, tag = split_image(args.image)
    target = resolve(args)
    account, region = _source(args, target)
    forwarded: Forwarding | None = None
    if (account, region) != home(target):
        digest, forwarded = push_image_in(
            target, account, region, repository, tag, lose_event=args.lose_event
        )
    elif args.lose_event:
        digest = put_image(target, repository, tag)
    else:
        digest = push_image(target, repository, tag)
    watchers = watching_rules(target, "ecr", repository, account, region)
    shown = {
        "repository": repository,
        "tag": tag,
        "digest": digest,
        "account": account,
        "region": region,
        "event": _event_fate(args.lose_event, forwarded),
        "watched_by": watchers,
    }
    _report(args, shown, digest)
    _event_note(args, pushes.ECR_IMAGE_ACTION, forwarded)
    _unwatched_note(args, f"ECR repository {repository} ({account}, {region})", watchers)
    return 0


def _source(args: argparse.Namespace, target: Target) -> tuple[str, str]:
    """Where the push happens: `--account` and `--region`, each by default the local cloud's own."""
    own_account, own_region = home(target)
    return args.account or own_account, args.region or own_region


def _event_fate(lost: bool, forwarded: Forwarding | None) -> str:
    """`sent`, `lost` (--lose-event), `forwarded` or `not forwarded: <why>` (another account or Region)."""
    if lost:
        return "lost"
    if forwarded is None:
        return "sent"
    return "forwarded" if forwarded.delivered else f"not forwarded: {forwarded.reason}"


def _event_note(args: argparse.Namespace, event: str, forwarded: Forwarding | None) -> None:
    """On stderr (`event` in `--json`): an event lost on purpose, or one the forwarder did not bring."""
    if args.json:
        return
    if getattr(args, "lose_event", False):
        print(
            f"note: the {event} event was not sent (--lose-event): only a sweep can find this push",
            file=sys.stderr,
        )
    elif forwarded is not None and not forwarded.delivered:
        print(f"note: the {event} event does not reach pushdeploy: {forwarded.reason}", file=sys.stderr)


def run_push_commit(args: argparse.Namespace) -> int:
    if args.provider == "codecommit":
        _local_only(args, "push-commit codecommit", "git push does it and CodeCommit emits the event itself")
    elif args.account is not None:
        raise InputError(f"--account is for codecommit: a {args.provider} push has no AWS account")
    target = resolve(args)
    commit = args.commit or pushes.random_commit()
    if args.provider == "codecommit":
        return _push_codecommit(args, target, commit)
    return _push_webhook(args, target, commit)


def _push_codecommit(args: argparse.Namespace, target: Target, commit: str) -> int:
    account, region = _source(args, target)
    forwarded: Forwarding | None = None
    if (account, region) != home(target):
        forwarded = push_codecommit_in(target, account, region, args.repository, args.branch, commit)
        event_id = None
    else:
        event_id = push_codecommit(target, args.repository, args.branch, commit)
    watchers = watching_rules(target, "codecommit", args.repository, account, region)
    shown = {
        "provider": "codecommit",
        "repository": args.repository,
        "branch": args.branch,
        "commit": commit,
        "account": account,
        "region": region,
        "event": _event_fate(False, forwarded),
        "event_id": event_id,
        "watched_by": watchers,
    }
    _report(args, shown, commit)
    _event_note(args, pushes.CODECOMMIT_STATE_CHANGE, forwarded)
    _unwatched_note(args, f"CodeCommit repository {args.repository} ({account}, {region})", watchers)
    return 0


def _push_webhook(args: argparse.Namespace, target: Target, commit: str) -> int:
    status, answer = push_webhook(target, args.provider, args.repository, args.branch, commit)
    parsed = _json_or_text(answer)
    shown = {
        "provider": args.provider,
        "repository": args.repository,
        "branch": args.branch,
        "commit": commit,
        "status": status,
        "answer": parsed,
    }
    message = parsed.get("message") if isinstance(parsed, dict) else None
    _report(args, shown, f"{commit}\nHTTP {status} {message if isinstance(message, str) else answer}")
    return 0 if 200 <= status < 300 else 1


def _json_or_text(answer: str) -> Any:
    """The webhook's answer as the JSON it is (one object in `--json` output), or its text."""
    try:
        return json.loads(answer)
    except ValueError:
        return answer


def _report(args: argparse.Namespace, fields: dict[str, Any], text: str) -> None:
    print(json.dumps(fields, indent=2) if args.json else text)
