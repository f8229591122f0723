"""The local cloud's state file (`<state dir>/local.json`) and the SDK environment that points at it.

The file is what `pushdeploy --local ...` reads (see `pushdeploy.installation.load_local`): the Region,
an endpoint per boto3 service name, the stack outputs evaluated from the template, the webhook's base URL
and the processes of the local cloud.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

STATE_FILE = "local.json"

# boto3 service name -> the SDKs' (and the AWS CLI's) per-service endpoint variable.
ENDPOINT_VARIABLES: dict[str, str] = {
    "apprunner": "AWS_ENDPOINT_URL_APPRUNNER",
    "dynamodb": "AWS_ENDPOINT_URL_DYNAMODB",
    "ecr": "AWS_ENDPOINT_URL_ECR",
    "events": "AWS_ENDPOINT_URL_EVENTBRIDGE",
    "sqs": "AWS_ENDPOINT_URL_SQS",
    "secretsmanager": "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "sts": "AWS_ENDPOINT_URL_STS",
}
# moto accepts any credentials; these only keep real ones away from the local cloud.
TEST_CREDENTIALS: dict[str, str] = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
WEBHOOK_VARIABLE = "PUSHDEPLOY_WEBHOOK_URL"


def sdk_environment(region: str, endpoints: Mapping[str, str]) -> dict[str, str]:
    """Environment variables that point any AWS SDK or the AWS CLI at the local cloud."""
    variables = {
        ENDPOINT_VARIABLES[name]: url for name, url in endpoints.items() if name in ENDPOINT_VARIABLES
    }
    # AWS_REGION too: the AWS CLI and some SDKs read it before AWS_DEFAULT_REGION.
    return {**variables, "AWS_DEFAULT_REGION": region, "AWS_REGION": region, **TEST_CREDENTIALS}


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def write_state(state_dir: Path, state: Mapping[str, Any]) -> Path:
    """Write atomically: a reader never sees half a file."""
    path = state_path(state_dir)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def read_state(state_dir: Path) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads(state_path(state_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state


def running_pid(state_dir: Path) -> int | None:
    """The pid of the local cloud that wrote the state file, if it still runs."""
    state = read_state(state_dir)
    pid = (state or {}).get("pids", {}).get("local")
    if not isinstance(pid, int):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, someone else's
    return pid
