"""The `pushdeploy` command line. Every failure a user can cause ends in a one-line error, never a traceback.

Exit status: 0 done, 1 a failure talking to AWS or the local cloud, 2 invalid input (event, rules, usage).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from pushdeploy.cli import (
    changes_cmd,
    deployments_cmd,
    explain_cmd,
    local_cmd,
    operator_cmd,
    push_cmd,
    rules_cmd,
    simulate_cmd,
    webhook_cmd,
)
from pushdeploy.cli.context import add_global_options
from pushdeploy.errors import PushdeployError, RulesError

Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pushdeploy", description="Deploy-on-push controller for AWS App Runner."
    )
    add_global_options(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    explain_cmd.register(commands)
    rules_cmd.register(commands)
    deployments_cmd.register(commands)
    operator_cmd.register(commands)
    changes_cmd.register(commands)
    webhook_cmd.register(commands)
    local_cmd.register(commands)
    push_cmd.register(commands)
    simulate_cmd.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Command = args.handler
    try:
        return handler(args)
    except RulesError as invalid:
        for problem in invalid.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except PushdeployError as error:
        print(f"error: {error}", file=sys.stderr)
        return getattr(error, "exit_status", 2)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
