"""The local cloud for end-to-end tests and benchmarks: `pushdeploy local up` as a real subprocess, driven
through the CLI (in-process, for speed: the same `main()` the console script runs) and through boto3.

One local cloud at a time: `running_local_cloud` refuses to start a second one while another it started
still runs, and takes each one down completely (its worker processes included) before returning.
"""

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

from pushdeploy.adapters.ledger import Ledger
from pushdeploy.cli.main import main
from pushdeploy.installation import Target, load_local
from pushdeploy.local import services
from pushdeploy.local.burst import change_records
from pushdeploy.local.services import code_source
from tests.conftest import ROOT

READY_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 10.0  # SIGTERM stops it all within a few seconds, after a burst too
SETTLED = frozenset({"succeeded", "failed", "rolled_back", "superseded", "dry_run", "error"})
ACCOUNT = "111122223333"
REGION = "us-east-1"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/AppRunnerECRAccess"
CONNECTION = f"arn:aws:apprunner:{REGION}:{ACCOUNT}:connection/github/0123456789abcdef0123456789abcdef"
DEPLOY_OPERATIONS = frozenset({"START_DEPLOYMENT", "UPDATE_SERVICE"})
T = TypeVar("T")


class CloudError(Exception):
    """The local cloud did not start, or did not stop cleanly."""


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

    @property
    def target(self) -> Target:
        """What the CLI's library functions (`push_image`, ...) take: this local cloud."""
        return load_local(str(self.state_dir))

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.client("dynamodb"), self.state["outputs"]["LedgerTableName"])

    def cli(self, *args: str, expect: int = 0) -> str:
        """`pushdeploy --local --state-dir DIR ARGS...`; its stdout, after checking its exit status."""
        return self.cli_streams(*args, expect=expect)[0]

    def cli_streams(self, *args: str, expect: int = 0) -> tuple[str, str]:
        """As `cli`: its stdout and its stderr."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(["--local", "--state-dir", str(self.state_dir), *args])
        assert status == expect, (
            f"pushdeploy {' '.join(args)}: exit {status}\n{out.getvalue()}{err.getvalue()}"
        )
        return out.getvalue(), err.getvalue()

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
        (arn,) = self.create_image_services({name: (repository, tag)})
        return arn

    def create_image_services(self, services: dict[str, tuple[str, str]]) -> list[str]:
        """Create image services (name -> (repository, tag)) at once; their ARNs once all are RUNNING."""
        apprunner = self.client("apprunner")
        arns = [
            apprunner.create_service(ServiceName=name, SourceConfiguration=image_source(repository, tag))[
                "Service"
            ]["ServiceArn"]
            for name, (repository, tag) in services.items()
        ]
        self._wait_running(arns)
        return arns

    def create_code_service(self, name: str, repository_url: str, branch: str = "main") -> str:
        source = code_source(repository_url, branch, CONNECTION)
        arn: str = self.client("apprunner").create_service(ServiceName=name, SourceConfiguration=source)[
            "Service"
        ]["ServiceArn"]
        self._wait_running([arn])
        return arn

    def _wait_running(self, arns: list[str]) -> None:
        apprunner = self.client("apprunner")

        def all_running() -> bool:
            return all(
                apprunner.describe_service(ServiceArn=a)["Service"]["Status"] == "RUNNING" for a in arns
            )

        wait_until(all_running)

    def operations(self, service: str, page_size: int = 20) -> list[dict[str, Any]]:
        """Every operation of the service, newest first, paging through ListOperations (no paginator)."""
        apprunner = self.client("apprunner")
        found: list[dict[str, Any]] = []
        request: dict[str, Any] = {"ServiceArn": service, "MaxResults": page_size}
        while True:
            page = apprunner.list_operations(**request)
            found.extend(page["OperationSummaryList"])
            if not page.get("NextToken"):
                return found
            request["NextToken"] = page["NextToken"]

    def deploy_operations(self, service: str) -> list[dict[str, Any]]:
        """The service's StartDeployment and UpdateService operations, oldest first."""
        listed = [op for op in self.operations(service) if op["Type"] in DEPLOY_OPERATIONS]
        return sorted(listed, key=lambda op: op["StartedAt"])

    # ----- rules, functions and the ledger -----

    def apply_rules(self, directory: Path, rules: list[dict[str, Any]]) -> None:
        path = directory / "rules.yaml"
        path.write_text(json.dumps({"version": 1, "rules": rules}), encoding="utf-8")  # JSON is YAML
        self.cli("rules", "apply", str(path))

    def invocation_queue(self, function: str) -> str:
        """The SQS queue that plays the function's asynchronous invocation queue (its rules' target)."""
        url: str = self.state["functions"][function]["invocation_queue_url"]
        return url

    def queue_drained(self, queue_url: str) -> bool:
        """No message waiting, being handled, or delayed for a retry."""
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return all(int(count) == 0 for count in attributes.values())

    def changes(self) -> list[dict[str, Any]]:
        """Every change record of the ledger (a scan: tests only)."""
        return change_records(self.target)

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


def image_source(repository: str, tag: str) -> dict[str, Any]:
    """An ECR image service's SourceConfiguration, in manual deployment mode."""
    return services.image_source(f"{REGISTRY}/{repository}:{tag}", ROLE)


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


# ----- starting and stopping -----

_running: list[LocalCloud] = []  # the local cloud this process runs, if any


def running_cloud() -> LocalCloud | None:
    """The local cloud `running_local_cloud` runs now, if any."""
    return _running[0] if _running else None


@contextlib.contextmanager
def running_local_cloud(state_dir: Path, *options: str) -> Iterator[LocalCloud]:
    """`pushdeploy local up --state-dir STATE_DIR OPTIONS...` until the block ends; then it is stopped and
    every process it started is checked to be gone."""
    if _running:
        raise CloudError(f"a local cloud already runs (state in {_running[0].state_dir}): one at a time")
    command = [sys.executable, "-m", "pushdeploy.cli.main", "local", "up", "--state-dir", str(state_dir)]
    began = time.monotonic()
    process = subprocess.Popen(
        [*command, *options],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_clean_env(),
    )
    cloud = LocalCloud(state_dir, process)
    _running.append(cloud)
    ready = threading.Event()
    threading.Thread(target=_follow, args=(process, cloud.output, ready), daemon=True).start()
    try:
        if not ready.wait(READY_TIMEOUT_SECONDS) or process.poll() is not None:
            raise CloudError("local up did not get ready:\n" + "\n".join(cloud.output))
        cloud.startup_seconds = time.monotonic() - began
        yield cloud
    finally:
        try:
            _stop(cloud)
        finally:
            _running.remove(cloud)


def _follow(process: subprocess.Popen[str], lines: list[str], ready: threading.Event) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("ready"):
            ready.set()
    ready.set()  # the process ended: let the waiter see it


def _clean_env() -> dict[str, str]:
    """The caller's environment without AWS settings: the local cloud must not depend on them."""
    return {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}


def _stop(cloud: LocalCloud) -> None:
    workers = _worker_pids(cloud)
    if cloud.process.poll() is None:
        cloud.process.send_signal(signal.SIGTERM)
    try:
        status = cloud.process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        cloud.process.kill()
        cloud.process.wait()
        raise CloudError("local up did not stop on SIGTERM:\n" + "\n".join(cloud.output)) from None
    if status != 0:
        raise CloudError(f"local up exited {status}:\n" + "\n".join(cloud.output))
    if (cloud.state_dir / "local.json").exists():
        raise CloudError("local up left its state file behind")
    left = [pid for pid in workers if _alive(pid)]
    # Workers run from spec files in the state directory: none may outlive the local cloud, even one
    # respawned after the pids above were read.
    left += [pid for pid in processes_mentioning(f"{cloud.state_dir}/") if pid not in left]
    if left:
        raise CloudError(f"processes left behind by local up: {left}")


def _worker_pids(cloud: LocalCloud) -> list[int]:
    with contextlib.suppress(OSError, ValueError, KeyError):
        return [pid for pids in cloud.state["pids"]["workers"].values() for pid in pids]
    return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def processes_mentioning(text: str) -> list[int]:
    """Pids of this user's live processes whose command line contains `text` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                found.append(int(entry.name))
    return found
