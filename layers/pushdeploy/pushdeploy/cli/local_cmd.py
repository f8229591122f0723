"""`pushdeploy local up|env`: run the local cloud in the foreground, point SDKs at it (DESIGN 4.5)."""

from __future__ import annotations

import argparse
import re
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from pushdeploy.installation import TargetError, load_local
from pushdeploy.local.state import WEBHOOK_VARIABLE, running_pid, sdk_environment

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# The template's sweep function (its Schedule event SweepSchedule): `--sweep-seconds` sets its interval.
SWEEP_FUNCTION = "SweeperFunction"


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "local", help="run the local cloud: moto, the App Runner simulator, the functions"
    )
    actions = parser.add_subparsers(dest="local_command", required=True, metavar="ACTION")

    up = actions.add_parser(
        "up",
        help="start the local cloud in the foreground (Ctrl-C stops it)",
        description="Start moto, the App Runner simulator and the functions of template.yaml on 127.0.0.1; "
        "print a line starting with 'ready' and write STATE_DIR/local.json when ready.",
    )
    _state_dir_option(up)
    up.add_argument(
        "--operation-seconds",
        type=_positive,
        default=3.0,
        metavar="S",
        help="how long an App Runner operation takes (default 3)",
    )
    up.add_argument(
        "--reconcile-seconds",
        type=_positive,
        default=5.0,
        metavar="S",
        help="interval of the reconciler's schedule (default 5)",
    )
    up.add_argument(
        "--sweep-seconds",
        type=_positive,
        default=30.0,
        metavar="S",
        help="interval of the sweep's schedule, which finds pushes whose event was lost (default 30)",
    )
    up.add_argument(
        "--concurrency",
        type=_workers,
        default=2,
        metavar="N",
        help="worker processes per function (default 2)",
    )
    up.add_argument(
        "--retry-seconds",
        type=_positive,
        default=1.0,
        metavar="S",
        help="delay before a failed asynchronous invocation is retried (default 1)",
    )
    up.add_argument("--region", default="us-east-1", help="Region of the local cloud (default us-east-1)")
    up.add_argument(
        "--account",
        type=account_id,
        default="111122223333",
        help="account id of the local cloud (default 111122223333)",
    )
    up.add_argument(
        "--stack", default="pushdeploy", help="stack name the resources are named after (default pushdeploy)"
    )
    up.add_argument(
        "--template", type=Path, help="the SAM template (default: ./template.yaml, else the project's)"
    )
    up.add_argument(
        "--parameter", action="append", default=[], metavar="NAME=VALUE", help="a template parameter's value"
    )
    up.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a variable for every function, over the template's",
    )
    up.set_defaults(handler=run_up)

    env = actions.add_parser(
        "env",
        help="print export lines that point AWS SDKs and the AWS CLI at the local cloud",
        description='Use as: eval "$(pushdeploy local env)"',
    )
    _state_dir_option(env)
    env.set_defaults(handler=run_env)


def _state_dir_option(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: given after the action it wins; else the global --state-dir (or its default) stands.
    parser.add_argument(
        "--state-dir", default=argparse.SUPPRESS, help="state directory (default: .pushdeploy)"
    )


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:  # NaN too
        raise argparse.ArgumentTypeError(f"must be more than 0: {text}")
    return value


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 8:
        raise argparse.ArgumentTypeError(f"must be from 1 to 8: {text}")
    return value


def account_id(text: str) -> str:
    if not re.fullmatch(r"\d{12}", text):
        raise argparse.ArgumentTypeError(f"an account id is 12 digits: {text}")
    return text


def _assignments(values: list[str], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        name, separator, content = value.partition("=")
        if not separator or not name:
            raise TargetError(f"{option} {value!r} is not NAME=VALUE")
        pairs[name] = content
    return pairs


def run_up(args: argparse.Namespace) -> int:
    # Imported here: moto and the simulator are only needed by this command.
    from pushdeploy.local.cloud import CloudOptions, LocalCloud, default_template

    state_dir = Path(args.state_dir)
    options = CloudOptions(
        state_dir=state_dir,
        template=(args.template or default_template()).resolve(),
        region=args.region,
        account=args.account,
        stack_name=args.stack,
        operation_seconds=args.operation_seconds,
        reconcile_seconds=args.reconcile_seconds,
        schedule_seconds={SWEEP_FUNCTION: args.sweep_seconds},
        concurrency=args.concurrency,
        retry_seconds=args.retry_seconds,
        parameters=_assignments(args.parameter, "--parameter"),
        environment=_assignments(args.env, "--env"),
    )
    cloud = LocalCloud(options)
    for stop_signal in _STOP_SIGNALS:
        signal.signal(stop_signal, _interrupt)
    try:
        took = cloud.start()
        hint = "" if str(state_dir) == ".pushdeploy" else f" --state-dir {shlex.quote(str(state_dir))}"
        print(
            f"ready in {took:.1f} s: state in {state_dir / 'local.json'}; "
            f'eval "$(pushdeploy local env{hint})" points AWS SDKs and the AWS CLI at it; Ctrl-C stops it',
            flush=True,
        )
        cloud.supervise(threading.Event())
    except KeyboardInterrupt:
        pass
    finally:
        for stop_signal in _STOP_SIGNALS:
            signal.signal(stop_signal, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        cloud.stop()
    return 0


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    # SIGTERM stops the local cloud as Ctrl-C does: through the same cleanup.
    raise KeyboardInterrupt


def run_env(args: argparse.Namespace) -> int:
    target = load_local(args.state_dir)
    if running_pid(Path(args.state_dir)) is None:
        print(f"warning: the local cloud of {args.state_dir} is not running", file=sys.stderr)
    if target.region is None:
        raise TargetError(f"{target.description} has no Region: is its state file complete?")
    variables = sdk_environment(target.region, target.endpoints)
    webhook = target.extra.get("webhook_url")
    if webhook:
        variables[WEBHOOK_VARIABLE] = str(webhook)
    variables["PUSHDEPLOY_STATE_DIR"] = str(Path(args.state_dir).resolve())
    for name, value in variables.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0
