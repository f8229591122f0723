"""`make demo`: the main job on the local cloud, as a scripted scenario with a live view.

It starts the local cloud (moto, the App Runner simulator, the real functions of template.yaml), creates
App Runner services with ordinary CreateService calls, installs rules, and then pushes:

1. an exact tag (`web:latest`), which redeploys the staging service;
2. a semver tag (`web:v1.4.0`), which pins production to the pushed digest;
3. a burst during a running deployment: one runs, the newest waits, the ones between are superseded;
4. an image that fails to start, which App Runner rolls back: recorded as a failure;
5. a tag no rule matches, with the reasons;
6. a signed GitHub push, through the webhook, which redeploys a code-based service.

Each step says what it expects, and the demo checks it against the ledger and App Runner. It ends with the
ledger as a table and a one-line summary, and exits 0 only if every step settled as expected.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from pushdeploy.adapters.ledger import Ledger
from pushdeploy.cli.context import Target, load_local
from pushdeploy.cli.push_cmd import push_image, push_webhook
from pushdeploy.domain.deployments import IN_FLIGHT, Deployment
from pushdeploy.local.cloud import CloudOptions, LocalCloud, default_template

ACCOUNT = "111122223333"
REGION = "us-east-1"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/AppRunnerECRAccessRole"
CONNECTION = f"arn:aws:apprunner:{REGION}:{ACCOUNT}:connection/github/0123456789abcdef0123456789abcdef"
SETTLE_TIMEOUT = 45.0
_STATUS_STYLE = {
    "succeeded": "green",
    "rolled_back": "bold red",
    "failed": "bold red",
    "error": "red",
    "superseded": "dim",
    "queued": "yellow",
    "starting": "cyan",
    "in_progress": "cyan",
    "dry_run": "magenta",
}


class DemoFailed(Exception):
    pass


@dataclass
class Step:
    title: str
    outcome: str = "running"
    ok: bool | None = None


@dataclass
class Demo:
    target: Target
    cloud: LocalCloud
    console: Console
    steps: list[Step] = field(default_factory=list)
    services: dict[str, str] = field(default_factory=dict)
    live: Live | None = None

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.target.client("dynamodb"), self.target.output("LedgerTableName"))

    # --- the view ---------------------------------------------------------------------------------

    def view(self) -> Group:
        return Group(self._steps_table(), self._ledger_table(self.ledger.recent(40)))

    def _steps_table(self) -> Table:
        table = Table(title="pushdeploy demo", title_justify="left", expand=True, show_edge=False)
        table.add_column("", width=2)
        table.add_column("step")
        table.add_column("outcome")
        for step in self.steps:
            mark = {True: Text("✔", "green"), False: Text("✘", "bold red"), None: Text("…", "cyan")}[step.ok]
            table.add_row(mark, step.title, step.outcome)
        return table

    def _ledger_table(self, deployments: list[Deployment]) -> Table:
        table = Table(title="ledger (newest first)", title_justify="left", expand=True)
        for column in ("time", "service", "pushed", "action", "status", "note"):
            table.add_column(column, overflow="fold")
        names = {arn: name for name, arn in self.services.items()}
        for d in deployments:
            pushed = f"web:{d.tag}" if d.tag else f"{d.branch}@{(d.commit or '')[:8]}"
            status = Text(str(d.status), _STATUS_STYLE.get(str(d.status), ""))
            table.add_row(
                d.created_at.strftime("%H:%M:%S"),
                names.get(d.service, d.service),
                pushed,
                d.action,
                status,
                _note(d),
            )
        return table

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.view())

    # --- steps ------------------------------------------------------------------------------------

    def step(self, title: str, action: Callable[[], str]) -> None:
        step = Step(title)
        self.steps.append(step)
        self.refresh()
        try:
            step.outcome = action()
            step.ok = True
        except DemoFailed as failed:
            step.outcome, step.ok = str(failed), False
        self.refresh()

    def wait_until_settled(self, service: str, count: int) -> list[Deployment]:
        """The service's deployments, oldest first, once `count` exist and none is in flight."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            deployments = list(reversed(self.ledger.for_service(service, limit=None)))
            if len(deployments) >= count and not any(d.status in IN_FLIGHT for d in deployments):
                return deployments
            self.refresh()
            time.sleep(0.3)
        raise DemoFailed(f"{self.name(service)} did not settle within {SETTLE_TIMEOUT:.0f} s")

    def wait_for_status(self, service: str, status: str) -> None:
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            if any(d.status == status for d in self.ledger.for_service(service, limit=10)):
                return
            self.refresh()
            time.sleep(0.1)
        raise DemoFailed(f"{self.name(service)} never reached {status}")

    def name(self, service: str) -> str:
        return next((name for name, arn in self.services.items() if arn == service), service)

    def configured_image(self, service: str) -> str:
        described = self.target.client("apprunner").describe_service(ServiceArn=service)["Service"]
        return str(described["SourceConfiguration"]["ImageRepository"]["ImageIdentifier"])


def _note(deployment: Deployment) -> str:
    """A few words on where a deployment stands."""
    operation = (deployment.operation_id or "")[:8]
    notes = {
        "queued": "waiting for the service",
        "starting": "calling App Runner",
        "in_progress": f"operation {operation} running",
        "succeeded": f"operation {operation} SUCCEEDED",
        "rolled_back": "ROLLBACK_SUCCEEDED: not live, previous version restored",
        "failed": f"operation {operation} {deployment.operation_status}",
        "superseded": "replaced by a newer push while waiting",
        "error": deployment.detail or "refused",
        "dry_run": "dry run: recorded only",
    }
    return notes.get(str(deployment.status), deployment.reason)


# --- setting the scene --------------------------------------------------------------------------------


def create_services(demo: Demo) -> None:
    apprunner = demo.target.client("apprunner")
    for name, tag in (("web-staging", "latest"), ("web-prod", "v1.0.0")):
        source = {
            "ImageRepository": {
                "ImageIdentifier": f"{REGISTRY}/web:{tag}",
                "ImageRepositoryType": "ECR",
                "ImageConfiguration": {"Port": "8080"},
            },
            "AuthenticationConfiguration": {"AccessRoleArn": ROLE},
            "AutoDeploymentsEnabled": False,
        }
        demo.services[name] = apprunner.create_service(ServiceName=name, SourceConfiguration=source)[
            "Service"
        ]["ServiceArn"]
    code = {
        "CodeRepository": {
            "RepositoryUrl": "https://github.com/Codertocat/Hello-World",
            "SourceCodeVersion": {"Type": "BRANCH", "Value": "master"},
            "CodeConfiguration": {"ConfigurationSource": "REPOSITORY"},
        },
        "AuthenticationConfiguration": {"ConnectionArn": CONNECTION},
        "AutoDeploymentsEnabled": False,
    }
    demo.services["hello"] = apprunner.create_service(ServiceName="hello", SourceConfiguration=code)[
        "Service"
    ]["ServiceArn"]
    wait_for_services(demo)


def wait_for_services(demo: Demo) -> None:
    apprunner = demo.target.client("apprunner")
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        statuses = {
            apprunner.describe_service(ServiceArn=arn)["Service"]["Status"] for arn in demo.services.values()
        }
        if statuses == {"RUNNING"}:
            return
        time.sleep(0.2)
    raise DemoFailed("App Runner services did not reach RUNNING")


def rules_yaml(services: dict[str, str]) -> str:
    return f"""version: 1
rules:
  - id: web-staging
    service: {services["web-staging"]}
    image: {{repository: web, tag: latest}}
  - id: web-prod
    service: {services["web-prod"]}
    image: {{repository: web, semver: ">=1.2.0,<2.0.0"}}
  - id: hello
    service: {services["hello"]}
    code: {{provider: github, repository: codertocat/hello-world, branch: master}}
"""


def install_rules(demo: Demo, state_dir: Path) -> str:
    from pushdeploy.adapters.rules_store import RulesStore
    from pushdeploy.domain.rules import load_rules_file

    path = state_dir / "demo-rules.yaml"
    path.write_text(rules_yaml(demo.services), encoding="utf-8")
    store = RulesStore(demo.target.client("dynamodb"), demo.target.output("RulesTableName"))
    diff = store.apply(store.all_rules(), load_rules_file(str(path)))
    return f"{len(diff.added)} rules installed from {path.name}"


# --- the scenario -------------------------------------------------------------------------------------


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise DemoFailed(message)


def exact_tag(demo: Demo) -> str:
    staging = demo.services["web-staging"]
    digest = push_image(demo.target, "web", "latest")
    (deployment,) = demo.wait_until_settled(staging, 1)
    expect(deployment.status == "succeeded", f"web:latest ended {deployment.status}")
    expect(deployment.action == "start_deployment", "an exact tag should redeploy with StartDeployment")
    expect(deployment.digest == digest, "the ledger should record the pushed digest")
    return f"web:latest -> StartDeployment on web-staging -> succeeded ({deployment.operation_id})"


def semver_pin(demo: Demo) -> str:
    prod = demo.services["web-prod"]
    digest = push_image(demo.target, "web", "v1.4.0")
    (deployment,) = demo.wait_until_settled(prod, 1)
    pinned = f"{REGISTRY}/web@{digest}"
    expect(deployment.status == "succeeded", f"web:v1.4.0 ended {deployment.status}")
    expect(demo.configured_image(prod) == pinned, "web-prod should now run the pushed digest")
    return f"web:v1.4.0 -> UpdateService to web@{digest[:19]}... -> succeeded"


def burst(demo: Demo) -> str:
    prod = demo.services["web-prod"]
    before = len(demo.ledger.for_service(prod, limit=None))
    push_image(demo.target, "web", "v1.5.0")
    demo.wait_for_status(prod, "in_progress")
    newest = ""
    for tag in ("v1.5.1", "v1.5.2", "v1.5.3"):
        newest = push_image(demo.target, "web", tag)
    deployments = demo.wait_until_settled(prod, before + 2)[before:]
    by_tag = {d.tag: d for d in deployments}
    expect(by_tag["v1.5.0"].status == "succeeded", "the first of the burst should succeed")
    expect(
        by_tag.get("v1.5.3") is not None and by_tag["v1.5.3"].status == "succeeded",
        "the newest of the burst should be deployed after the running one",
    )
    between = [by_tag[tag] for tag in ("v1.5.1", "v1.5.2") if tag in by_tag]
    expect(all(d.status == "superseded" for d in between), "the pushes in between should be superseded")
    expect(demo.configured_image(prod).endswith(newest), "web-prod should end on the newest push")
    # Events may arrive out of order: one in between may instead be refused as older than v1.5.3.
    skipped = 2 - len(between)
    return f"4 pushes during a deployment: v1.5.0 ran, v1.5.3 ran next, {len(between)} superseded" + (
        f", {skipped} refused as older" if skipped else ""
    )


def rollback(demo: Demo) -> str:
    prod = demo.services["web-prod"]
    live_before = demo.configured_image(prod)
    assert demo.cloud.simulator is not None
    demo.cloud.simulator.fail_next(prod)
    before = len(demo.ledger.for_service(prod, limit=None))
    push_image(demo.target, "web", "v1.6.0")
    deployment = demo.wait_until_settled(prod, before + 1)[-1]
    expect(
        deployment.status == "rolled_back", f"a failing image should be rolled_back, was {deployment.status}"
    )
    expect(demo.configured_image(prod) == live_before, "the previous version should still be live")
    return "web:v1.6.0 fails to start -> App Runner ROLLBACK_SUCCEEDED -> recorded rolled_back (a failure)"


def no_match(demo: Demo) -> str:
    push_image(demo.target, "web", "feature-x")
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        changes = [c for c in _changes(demo) if (c.get("change") or {}).get("tag") == "feature-x"]
        if changes:
            decisions = changes[0]["decisions"]
            expect(all(d["deployment"] is None for d in decisions), "feature-x should deploy nothing")
            return "web:feature-x -> " + "; ".join(f"{d['rule']}: {d['reason']}" for d in decisions)
        demo.refresh()
        time.sleep(0.2)
    raise DemoFailed("the push of web:feature-x was never recorded")


def _changes(demo: Demo) -> list[dict[str, Any]]:
    dynamodb = demo.target.client("dynamodb")
    table = demo.target.output("LedgerTableName")
    items = dynamodb.scan(
        TableName=table, FilterExpression="kind = :c", ExpressionAttributeValues={":c": {"S": "change"}}
    )["Items"]
    return [c for c in (demo.ledger.change(item["change_id"]["S"]) for item in items) if c]


def github_push(demo: Demo) -> str:
    hello = demo.services["hello"]
    status, answer = push_webhook(demo.target, "github", "Codertocat/Hello-World", "master", None)
    expect(status == 202, f"the webhook answered {status}: {answer}")
    (deployment,) = demo.wait_until_settled(hello, 1)
    expect(deployment.status == "succeeded", f"the GitHub push ended {deployment.status}")
    return f"signed GitHub push -> webhook 202 -> StartDeployment on hello -> succeeded ({deployment.commit})"


SCENARIO: tuple[tuple[str, Callable[[Demo], str]], ...] = (
    ("exact tag: push web:latest", exact_tag),
    ("semver rule pins a digest: push web:v1.4.0", semver_pin),
    ("burst during a deployment: v1.5.0 .. v1.5.3", burst),
    ("a failing image is rolled back", rollback),
    ("a push no rule matches", no_match),
    ("a signed GitHub push through the webhook", github_push),
)


def run(state_dir: Path, console: Console) -> bool:
    began = time.monotonic()
    options = CloudOptions(
        state_dir=state_dir, template=default_template(), operation_seconds=2.0, reconcile_seconds=2.0
    )
    with open(state_dir / "local-cloud.log", "w", encoding="utf-8") as log:
        cloud = LocalCloud(options, out=log)
        console.print(f"starting the local cloud (state in {state_dir}) ...")
        startup = cloud.start()
        try:
            demo = Demo(load_local(str(state_dir)), cloud, console)
            with Live(demo.view(), console=console, refresh_per_second=4, transient=False) as live:
                demo.live = live
                demo.step(
                    "local cloud up, App Runner services created", lambda: _scene(demo, state_dir, startup)
                )
                for title, action in SCENARIO:
                    if all(step.ok for step in demo.steps):
                        demo.step(title, lambda action=action: action(demo))  # type: ignore[misc]
            passed = all(step.ok for step in demo.steps) and len(demo.steps) == len(SCENARIO) + 1
            settled = demo.ledger.recent(100)
        finally:
            cloud.stop()
    summary = status_counts(settled)
    verdict = "\n[green]PASS[/]" if passed else "\n[bold red]FAIL[/]"
    console.print(
        f"{verdict} {len(demo.steps)} steps, {len(settled)} deployments ({summary}) in "
        f"{time.monotonic() - began:.0f} s"
    )
    return passed


def _scene(demo: Demo, state_dir: Path, startup: float) -> str:
    create_services(demo)
    installed = install_rules(demo, state_dir)
    return f"ready in {startup:.1f} s; 3 services; {installed}"


def status_counts(deployments: list[Deployment]) -> str:
    counts: dict[str, int] = {}
    for deployment in deployments:
        counts[str(deployment.status)] = counts.get(str(deployment.status), 0) + 1
    return ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pushdeploy-demo", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--state-dir", type=Path, help="keep the local cloud's state here (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    # Piped (make, CI) output defaults to 80 columns, too narrow for the ledger.
    console = Console(width=None if sys.stdout.isatty() else 132)
    if args.state_dir:
        args.state_dir.mkdir(parents=True, exist_ok=True)
        return 0 if run(args.state_dir, console) else 1
    with tempfile.TemporaryDirectory(prefix="pushdeploy-demo-") as tmp:
        return 0 if run(Path(tmp), console) else 1


if __name__ == "__main__":
    sys.exit(main())
