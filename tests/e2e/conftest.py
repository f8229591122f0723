"""The local cloud for end-to-end tests: `pushdeploy local up` as a real subprocess, driven through the CLI
(in-process, for speed: the same `main()` the console script runs) and through boto3."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest

from pushdeploy.cli.main import main
from tests.conftest import ROOT

READY_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 20.0
SETTLED = frozenset({"succeeded", "failed", "rolled_back", "superseded", "dry_run", "error"})
ACCOUNT = "111122223333"
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/AppRunnerECRAccess"
T = TypeVar("T")
CONNECTION = f"arn:aws:apprunner:{REGION}:{ACCOUNT}:connection/github/0123456789abcdef0123456789abcdef"


@dataclass
class LocalCloud:
    """A running `pushdeploy local up`, and ways to use it."""

    state_dir: Path
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    startup_seconds: float = 0.0

    @property
    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads((self.state_dir / "local.json").read_text(encoding="utf-8"))
        return state

    def cli(self, *args: str, expect: int = 0) -> str:
        """`pushdeploy --local --state-dir DIR ARGS...`; its stdout, after checking its exit status."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(["--local", "--state-dir", str(self.state_dir), *args])
        assert status == expect, (
            f"pushdeploy {' '.join(args)}: exit {status}\n{out.getvalue()}{err.getvalue()}"
        )
        return out.getvalue()

    def client(self, service: str) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            region_name=REGION,
            endpoint_url=self.state["endpoints"][service],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    # ----- App Runner -----

    def create_image_service(self, name: str, repository: str, tag: str = "latest") -> str:
        source = {
            "ImageRepository": {
                "ImageIdentifier": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{repository}:{tag}",
                "ImageRepositoryType": "ECR",
                "ImageConfiguration": {"Port": "8080"},
            },
            "AuthenticationConfiguration": {"AccessRoleArn": ROLE},
            "AutoDeploymentsEnabled": False,
        }
        return self._create_service(name, source)

    def create_code_service(self, name: str, repository_url: str, branch: str = "main") -> str:
        source = {
            "CodeRepository": {
                "RepositoryUrl": repository_url,
                "SourceCodeVersion": {"Type": "BRANCH", "Value": branch},
                "CodeConfiguration": {"ConfigurationSource": "REPOSITORY"},
            },
            "AuthenticationConfiguration": {"ConnectionArn": CONNECTION},
            "AutoDeploymentsEnabled": False,
        }
        return self._create_service(name, source)

    def _create_service(self, name: str, source: dict[str, Any]) -> str:
        apprunner = self.client("apprunner")
        arn: str = apprunner.create_service(ServiceName=name, SourceConfiguration=source)["Service"][
            "ServiceArn"
        ]
        wait_until(lambda: apprunner.describe_service(ServiceArn=arn)["Service"]["Status"] == "RUNNING")
        return arn

    # ----- rules and the ledger -----

    def apply_rules(self, directory: Path, rules: list[dict[str, Any]]) -> None:
        path = directory / "rules.yaml"
        path.write_text(json.dumps({"version": 1, "rules": rules}), encoding="utf-8")  # JSON is YAML
        self.cli("rules", "apply", str(path))

    def deployments(self, service: str) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = json.loads(
            self.cli("deployments", "list", "--service", service, "--json")
        )
        return listed

    def settled_deployment(self, service: str, timeout: float = 30.0) -> dict[str, Any]:
        """The service's newest deployment, once settled."""

        def newest_settled() -> dict[str, Any] | None:
            found = self.deployments(service)
            return found[0] if found and found[0]["status"] in SETTLED else None

        return wait_until(newest_settled, timeout=timeout)


def wait_until(check: Callable[[], T | None], timeout: float = 30.0, every: float = 0.25) -> T:
    """The first truthy result of `check`, polled until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout:g} s: {check}")
        time.sleep(every)


def _follow(process: subprocess.Popen[str], lines: list[str], ready: threading.Event) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("ready"):
            ready.set()
    ready.set()  # the process ended: let the waiter see it


@pytest.fixture(scope="module")
def local_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    state_dir = tmp_path_factory.mktemp("local-cloud")
    command = [sys.executable, "-m", "pushdeploy.cli.main", "local", "up", "--state-dir", str(state_dir)]
    command += ["--operation-seconds", "1", "--reconcile-seconds", "2"]
    began = time.monotonic()
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_clean_env()
    )
    cloud = LocalCloud(state_dir, process)
    ready = threading.Event()
    threading.Thread(target=_follow, args=(process, cloud.output, ready), daemon=True).start()
    try:
        if not ready.wait(READY_TIMEOUT_SECONDS) or process.poll() is not None:
            pytest.fail("local up did not get ready:\n" + "\n".join(cloud.output))
        cloud.startup_seconds = time.monotonic() - began
        yield cloud
    finally:
        _stop(cloud)


def _clean_env() -> dict[str, str]:
    """The caller's environment without AWS settings: the local cloud must not depend on them."""
    return {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}


def _stop(cloud: LocalCloud) -> None:
    workers = _worker_pids(cloud)
    cloud.process.send_signal(signal.SIGTERM)
    try:
        status = cloud.process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        cloud.process.kill()
        raise
    assert status == 0, "\n".join(cloud.output)
    assert not (cloud.state_dir / "local.json").exists()
    left = [pid for pid in workers if _alive(pid)]
    assert not left, f"worker processes left behind: {left}"


def _worker_pids(cloud: LocalCloud) -> list[int]:
    with contextlib.suppress(OSError, ValueError):
        return [pid for pids in cloud.state["pids"]["workers"].values() for pid in pids]
    return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
