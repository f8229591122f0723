"""The linters and SAM CLI as the template tests run them, on any template: cfn-lint with the serverless
rules (from this venv), and SAM CLI (on PATH, else .venv-tools, where `make tools` installs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env["SAM_CLI_TELEMETRY"] = "0"
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return env


def sam_cli() -> str:
    """SAM CLI's path; the test is skipped without it."""
    found = shutil.which("sam")
    local = ROOT / ".venv-tools" / "bin" / "sam"
    if found is None and local.exists():
        found = str(local)
    if found is None:
        pytest.skip(
            "SAM CLI not found: neither `sam` on PATH nor .venv-tools/bin/sam (`make tools` installs it)"
        )
    return found


def run(command: list[str], cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def cfn_lint(template: Path) -> subprocess.CompletedProcess[str]:
    """cfn-lint with the serverless rules on `template`."""
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    command = [str(cfn_lint) if cfn_lint.exists() else "cfn-lint"]
    # The template goes before -a: -a takes several values and would swallow it.
    return run([*command, str(template), "-a", "cfn_lint_serverless.rules"])


def sam_validate_lint(template: Path) -> subprocess.CompletedProcess[str]:
    return run([sam_cli(), "validate", "--lint", "--template", str(template)])
