"""Where the CLI's commands act: a deployed stack, or the local cloud with `--local` (both a `Target` of
`pushdeploy.installation`), chosen by the options every command takes."""

from __future__ import annotations

import argparse
import os

from pushdeploy.errors import PushdeployError
from pushdeploy.installation import DEFAULT_STATE_DIR, Target, load_local, load_stack

DEFAULT_STACK = "pushdeploy"


class InputError(PushdeployError):
    """Input the command cannot take (a malformed argument): exit status 2, the message says why."""

    exit_status = 2


def add_target_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where")
    # Also accepted after the command (`pushdeploy status --local`); SUPPRESS keeps the global one's value.
    group.add_argument(
        "--local", action="store_true", default=argparse.SUPPRESS, help="act on the local cloud"
    )
    group.add_argument(
        "--state-dir",
        default=argparse.SUPPRESS,
        help="the local cloud's state directory (default: .pushdeploy)",
    )
    group.add_argument(
        "--stack",
        default=os.environ.get("PUSHDEPLOY_STACK", DEFAULT_STACK),
        help="CloudFormation stack of pushdeploy (default: $PUSHDEPLOY_STACK or pushdeploy)",
    )
    group.add_argument("--region", default=None, help="AWS Region of the stack (default: the SDK's)")


def add_global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--local", action="store_true", help="act on the local cloud (pushdeploy local up)")
    parser.add_argument(
        "--state-dir",
        default=os.environ.get("PUSHDEPLOY_STATE_DIR", DEFAULT_STATE_DIR),
        help="the local cloud's state directory (default: .pushdeploy)",
    )


def resolve(args: argparse.Namespace) -> Target:
    if getattr(args, "local", False):
        return load_local(args.state_dir)
    return load_stack(getattr(args, "stack", DEFAULT_STACK), getattr(args, "region", None))
