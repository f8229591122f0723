"""The `pushdeploy` command line. Every failure a user can cause ends in a one-line error, never a traceback.

Exit status: 0 done, 1 a failure talking to AWS or the local cloud, 2 invalid input (event, rules, usage).

- `pushdeploy` alone, or a command group alone (`pushdeploy rules`), prints that help on stdout and exits
  0, as `gh` and `kubectl` do: asking for nothing is asking what there is. A usage error (an unknown
  option, a missing argument) is argparse's: usage and one line on stderr, exit 2.
- `--local` and `--state-dir` are accepted before or after the command, on every command.
- `--version` prints the installed package's version.
- A `--local` command whose local cloud has stopped says so in one line, with how to start it.
- Anything unexpected is one line too; `PUSHDEPLOY_DEBUG=1` lets its traceback through.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import urllib.error
from collections.abc import Callable, Iterator, Sequence
from functools import partial

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
from pushdeploy.installation import DEFAULT_STATE_DIR

Command = Callable[[argparse.Namespace], int]

DEBUG_VARIABLE = "PUSHDEPLOY_DEBUG"
# Help for arguments registered without any, by command and destination.
_ARGUMENT_HELP = {
    ("explain", "event_file"): "an EventBridge event (JSON), or a raw webhook body described by --header",
    ("webhook url", "provider"): "github or bitbucket (default: both)",
    ("webhook secret", "provider"): "github or bitbucket",
    ("webhook rotate", "provider"): "github or bitbucket",
    ("simulate fail", "service"): "the App Runner service's ARN",
    ("simulate lose-events", "service"): "the App Runner service's ARN",
}
_JSON_HELP = "print JSON on stdout"


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pushdeploy")
    except PackageNotFoundError:
        return "(version unknown: not installed as a package)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pushdeploy", description="Deploy-on-push controller for AWS App Runner."
    )
    parser.add_argument(
        "--version", action="version", version=f"pushdeploy {package_version()}", help="print the version"
    )
    add_global_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    explain_cmd.register(commands)
    rules_cmd.register(commands)
    deployments_cmd.register(commands)
    operator_cmd.register(commands)
    changes_cmd.register(commands)
    webhook_cmd.register(commands)
    local_cmd.register(commands)
    push_cmd.register(commands)
    simulate_cmd.register(commands)
    for path, command in _parsers(parser):
        _finish(command, path)
    return parser


# --- the same conventions on every command -----------------------------------------------------------


def _parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """The parser and every command's and command group's parser below it, with its command words."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, command in action.choices.items():
                if id(command) not in seen:  # an alias names the same parser again
                    seen.add(id(command))
                    yield from _parsers(command, (*path, name))


def _finish(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for group in groups:
        group.required = False  # the group alone prints its help
    if groups:
        parser.set_defaults(handler=partial(_print_help, parser))
    if path:  # the global options, also after the command
        options = parser._option_string_actions
        if "--local" not in options:
            parser.add_argument(
                "--local",
                action="store_true",
                default=argparse.SUPPRESS,
                help="act on the local cloud (also accepted before the command)",
            )
        if "--state-dir" not in options:
            parser.add_argument(
                "--state-dir",
                default=argparse.SUPPRESS,
                help="the local cloud's state directory (default: .pushdeploy)",
            )
    for action in parser._actions:
        if action.type is int:
            action.type = _whole_number
        elif action.type is float:
            action.type = _number
        if not action.help:
            if not action.option_strings:
                action.help = _ARGUMENT_HELP.get((" ".join(path), action.dest))
            elif "--json" in action.option_strings:
                action.help = _JSON_HELP


def _print_help(parser: argparse.ArgumentParser, _args: argparse.Namespace) -> int:
    parser.print_help()
    return 0


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


# --- running a command -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Command = args.handler
    try:
        return handler(args)
    except RulesError as invalid:
        for problem in invalid.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _quiet_stdout()  # the reader went away (`| head`): nothing left to say, and nowhere to say it
        return 1
    except Exception as error:
        if getattr(args, "local", False) and unreachable(error):
            print(f"error: {local_cloud_down(args)}", file=sys.stderr)
            return 1
        if isinstance(error, PushdeployError):
            print(f"error: {error}", file=sys.stderr)
            return int(getattr(error, "exit_status", 2))
        if _is_aws_error(error):
            print(f"error: {error}", file=sys.stderr)
            return 1
        if os.environ.get(DEBUG_VARIABLE):
            raise
        print(
            "error: pushdeploy failed unexpectedly: this is a bug, please report it "
            f"(run again with {DEBUG_VARIABLE}=1 to see where)",
            file=sys.stderr,
        )
        return 1


def unreachable(error: BaseException) -> bool:
    """Whether the error comes of nothing answering at an endpoint (connection refused, no route), in
    itself or anywhere in its chain of causes (a `raise ... from None` still keeps its context)."""
    from botocore.exceptions import EndpointConnectionError

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, EndpointConnectionError | ConnectionRefusedError):
            return True
        if isinstance(current, urllib.error.URLError) and isinstance(current.reason, ConnectionRefusedError):
            return True
        current = current.__cause__ or current.__context__
    return False


def local_cloud_down(args: argparse.Namespace) -> str:
    state_dir = str(getattr(args, "state_dir", DEFAULT_STATE_DIR))
    option = "" if state_dir == DEFAULT_STATE_DIR else f" --state-dir {shlex.quote(state_dir)}"
    return (
        f"the local cloud of {state_dir} is not running: start it with `pushdeploy local up{option}` "
        "(a new one starts empty: the state was in memory)"
    )


def _is_aws_error(error: BaseException) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(error, BotoCoreError | ClientError)


def _quiet_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
