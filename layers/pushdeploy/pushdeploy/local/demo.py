"""`make demo`: the main job on the local cloud, as a scripted scenario with a live view.

It starts the local cloud (moto, the App Runner simulator, the real functions of template.yaml), creates
App Runner services with ordinary CreateService calls, installs rules, and then pushes:

1. an exact tag (`web:latest`), which redeploys the staging service;
2. a semver tag (`web:v1.4.0`), which pins production to the pushed digest;
3. a burst during a running deployment: one runs, the newest waits, the ones between are superseded;
4. an image that fails to start, which App Runner rolls back: recorded as a failure;
5. a tag no rule matches, with the reasons;
6. a signed GitHub push, through the webhook, which redeploys a code-based service;

and then does what an operator on call does (the commands of `pushdeploy deploy|pause|resume|rollback|
status`, through the same controller entry points):

7. a manual deploy, recorded with who asked and why;
8. a pause during which two pushes are held, and a resume that deploys the newest only;
9. a rollback pinned to the previous good digest;

then gates (README: Gates and promotion), typing the `pushdeploy --local` commands an engineer would and
printing what they showed:

10. a push blocked by its scan (`simulate scan ... --critical 2`: rejected), and a clean one deployed;
11. a promotion: a push succeeds on api-staging, waits on api-prod for its bake there and an approval,
    and `approve` deploys that same digest to api-prod;

and ends with

12. `status`: what App Runner runs and what pushdeploy recorded, side by side.

Each step says what it expects, and the demo checks it against the ledger and App Runner. Pushes are made
one at a time (each recorded before the next), and gates are waited for by polling the ledger, so every
run ends with the same ledger and the same summary. It exits 0 only if every step settled as expected, and
ends with what to try next.
"""

from __future__ import annotations

import argparse
import functools
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from pushdeploy import installation
from pushdeploy.adapters.ledger import Ledger
from pushdeploy.domain.deployments import IN_FLIGHT, TERMINAL, Deployment
from pushdeploy.installation import Target, load_local
from pushdeploy.local.apprunner_sim import AppRunnerSimulator
from pushdeploy.local.cloud import CloudOptions, LocalCloud, default_template
from pushdeploy.local.sending import push_image, push_webhook
from pushdeploy.local.services import code_source, image_source
from pushdeploy.operators import Operator

ACCOUNT = "111122223333"
REGION = "us-east-1"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/AppRunnerECRAccessRole"
CONNECTION = f"arn:aws:apprunner:{REGION}:{ACCOUNT}:connection/github/0123456789abcdef0123456789abcdef"
SETTLE_TIMEOUT = 45.0
CLI_TIMEOUT = 60.0  # one `pushdeploy --local` command
OPERATION_SECONDS = 2.0
# Long enough for three pushes to be recorded, one after the other, while the first one runs.
BURST_OPERATION_SECONDS = 8.0
ACTOR_REASON = "demo: redeploy by hand"
# The promotion's bake on api-staging: a few of the local cloud's reconciler ticks (RECONCILE_SECONDS).
BAKE = "5s"
RECONCILE_SECONDS = 2.0
APPROVE_REASON = "demo: baked on staging, ship it"
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
    "held": "yellow",
    "rejected": "red",
}
NEXT_STEPS = """
What to try next, with a local cloud of your own (`pushdeploy local up` in one terminal):
  pushdeploy --local rules apply my-rules.yaml          # your services and rules (see README: Rules)
  pushdeploy --local push-image web:v2.0.0              # a push, as ECR reports it
  pushdeploy --local status                             # what runs, what pushdeploy recorded, drift
  pushdeploy --local changes list --since 1h            # every push and why it did or did not deploy
  pushdeploy --local pause web-prod --reason "incident" # hold pushes; `resume` deploys the newest
  pushdeploy --local rollback web-prod --wait           # back to the previous good digest
  pushdeploy --local simulate scan web@DIGEST --high 3  # its scan ends: a scan gate opens or says no
  pushdeploy --local approve ID --reason "CAB-42"       # approve a held deployment (see status)
  make soak                                             # the same controller under seeded faults
"""


class DemoFailed(Exception):
    pass


T = TypeVar("T")


@dataclass
class Step:
    title: str
    outcome: str = "running"
    ok: bool | None = None
    typed: bool = False  # whether a command was typed in it (its title then heads them)


@dataclass
class Demo:
    target: Target
    cloud: LocalCloud
    console: Console
    steps: list[Step] = field(default_factory=list)
    services: dict[str, str] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    live: Live | None = None

    # Made once: the demo polls the ledger many times a second.
    @functools.cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.target.client("dynamodb"), self.target.output("LedgerTableName"))

    @functools.cached_property
    def operator(self) -> Operator:
        return installation.operator(self.target)

    @functools.cached_property
    def actor(self) -> str:
        """Who the on-call steps act as (STS GetCallerIdentity, once)."""
        return installation.caller(self.target)

    @property
    def simulator(self) -> AppRunnerSimulator:
        assert self.cloud.simulator is not None, "the local cloud runs the App Runner simulator"
        return self.cloud.simulator

    def push_and_record(self, tag: str) -> str:
        """Push web:TAG and wait until pushdeploy has recorded a deployment of it: the digest."""
        digest = push_image(self.target, "web", tag)
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while not self.ledger.for_artifact(digest, limit=1):
            if time.monotonic() > deadline:
                raise DemoFailed(f"the push of web:{tag} was never recorded")
            self.refresh()
            time.sleep(0.1)
        return digest

    def pushdeploy(self, *words: str) -> str:
        """`pushdeploy --local WORDS`, as an engineer types it (the CLI, in its own process: the demo
        stands below the CLI and does not import it): prints the command and what it showed, and returns
        its output. DemoFailed when it fails."""
        state_dir = str(self.cloud.options.state_dir)
        command = [sys.executable, "-m", "pushdeploy.cli.main", "--local", "--state-dir", state_dir, *words]
        ran = subprocess.run(command, capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False)
        self._typed(f"pushdeploy --local {shlex.join(words)}", (ran.stdout + ran.stderr).rstrip())
        if ran.returncode != 0:
            raise DemoFailed(f"pushdeploy {words[0]} exited {ran.returncode}: {ran.stderr.strip()}")
        return ran.stdout

    def _typed(self, command: str, shown: str) -> None:
        """Print a command and what it showed, under the title of the step that typed it."""
        step = self.steps[-1] if self.steps else None
        if step is not None and not step.typed:
            step.typed = True
            self.console.print(Text(f"\n{step.title}", "bold cyan"), soft_wrap=True)
        self.console.print(Text(f"$ {command}", "bold"), soft_wrap=True)
        self.console.print(Text(shown, "dim"), soft_wrap=True)

    def poll(self, what: str, found: Callable[[], T | None]) -> T:
        """Poll the ledger (through `found`) until it finds something; DemoFailed, saying `what` it waited
        for, after SETTLE_TIMEOUT."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            value = found()
            if value is not None:
                return value
            self.refresh()
            time.sleep(0.2)
        raise DemoFailed(f"no {what} within {SETTLE_TIMEOUT:.0f} s")

    def deployment_on(self, service: str, digest: str) -> Deployment:
        """The deployment of a pushed digest to a service, once pushdeploy has recorded it."""

        def found() -> Deployment | None:
            return next((d for d in self.ledger.for_artifact(digest) if d.service == service), None)

        return self.poll(f"deployment of {digest[:19]} on {self.name(service)}", found)

    def settled(self, deployment: Deployment) -> Deployment:
        """The deployment once it has ended (succeeded, failed, rejected, superseded...)."""

        def ended() -> Deployment | None:
            now = self.ledger.deployment(deployment.id)
            return now if now is not None and now.status in TERMINAL else None

        return self.poll(f"end of deployment {deployment.id} on {self.name(deployment.service)}", ended)

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
            pushed = _pushed(d)
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


def _pushed(deployment: Deployment) -> str:
    if deployment.trigger in ("manual", "rollback"):
        what = f"{deployment.repository}:{deployment.tag}" if deployment.tag else "as configured"
        return f"{deployment.trigger}: {what}"
    if deployment.tag:
        return f"{deployment.repository}:{deployment.tag}"
    return f"{deployment.branch}@{(deployment.commit or '')[:8]}"


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
        "superseded": deployment.detail or "replaced by a newer push while waiting",
        "error": deployment.detail or "refused",
        "dry_run": "dry run: recorded only",
        "held": _held_note(deployment.held_by),
        "rejected": deployment.detail or "a gate said no",
    }
    return notes.get(str(deployment.status), deployment.reason)


def _held_note(held_by: tuple[str, ...]) -> str:
    gates = [gate for gate in held_by if gate != "pause"]
    return f"held: waits for {', '.join(gates)}" if gates else "held: the service is paused"


# --- setting the scene --------------------------------------------------------------------------------


IMAGE_SERVICES = (
    ("web-staging", "web:latest"),
    ("web-prod", "web:v1.0.0"),
    ("api-staging", "api:v1.0.0"),
    ("api-prod", "api:v1.0.0"),
    ("worker", "worker:v0.9.0"),
)


def create_services(demo: Demo) -> None:
    apprunner = demo.target.client("apprunner")
    for name, image in IMAGE_SERVICES:
        source = image_source(f"{REGISTRY}/{image}", ROLE)
        created = apprunner.create_service(ServiceName=name, SourceConfiguration=source)
        demo.services[name] = created["Service"]["ServiceArn"]
    code = code_source("https://github.com/Codertocat/Hello-World", "master", CONNECTION)
    created = apprunner.create_service(ServiceName="hello", SourceConfiguration=code)
    demo.services["hello"] = created["Service"]["ServiceArn"]
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
  - id: api-staging
    service: {services["api-staging"]}
    image: {{repository: api, semver: "^2.0.0"}}
  - id: api-prod
    service: {services["api-prod"]}
    image: {{repository: api, semver: "^2.0.0"}}
    gates:
      after: {{rule: api-staging, bake: {BAKE}}}
      approval: {{required: true, timeout: 1h}}
  - id: worker
    service: {services["worker"]}
    image: {{repository: worker, semver: "^1.0.0"}}
    gates:
      scan: {{max: {{critical: 0}}}}
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
    simulator = demo.simulator
    simulator.operation_seconds = BURST_OPERATION_SECONDS
    try:
        demo.push_and_record("v1.5.0")
        demo.wait_for_status(prod, "in_progress")
        newest = ""
        for tag in ("v1.5.1", "v1.5.2", "v1.5.3"):
            newest = demo.push_and_record(tag)
    finally:
        simulator.operation_seconds = OPERATION_SECONDS
    deployments = demo.wait_until_settled(prod, before + 4)[before:]
    by_tag = {d.tag: d for d in deployments}
    expect(by_tag["v1.5.0"].status == "succeeded", "the first of the burst should succeed")
    expect(by_tag["v1.5.3"].status == "succeeded", "the newest should be deployed after the running one")
    between = [by_tag[tag].status for tag in ("v1.5.1", "v1.5.2")]
    expect(between == ["superseded", "superseded"], f"the pushes in between should be superseded: {between}")
    expect(demo.configured_image(prod).endswith(newest), "web-prod should end on the newest push")
    return "4 pushes during a deployment: v1.5.0 ran, v1.5.3 ran next, v1.5.1 and v1.5.2 superseded"


def rolled_back_by_app_runner(demo: Demo) -> str:
    prod = demo.services["web-prod"]
    live_before = demo.configured_image(prod)
    demo.simulator.fail_next(prod)
    before = len(demo.ledger.for_service(prod, limit=None))
    demo.push_and_record("v1.6.0")
    deployment = demo.wait_until_settled(prod, before + 1)[-1]
    expect(
        deployment.status == "rolled_back", f"a failing image should be rolled_back, was {deployment.status}"
    )
    expect(demo.configured_image(prod) == live_before, "the previous version should still be live")
    return "web:v1.6.0 fails to start -> App Runner ROLLBACK_SUCCEEDED -> recorded rolled_back (a failure)"


def no_match(demo: Demo) -> str:
    digest = push_image(demo.target, "web", "feature-x")
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        changes = demo.ledger.changes_of_artifact(digest)
        if changes:
            decisions = changes[0]["decisions"]
            expect(all(d["deployment"] is None for d in decisions), "feature-x should deploy nothing")
            return "web:feature-x -> " + "; ".join(f"{d['rule']}: {d['reason']}" for d in decisions)
        demo.refresh()
        time.sleep(0.2)
    raise DemoFailed("the push of web:feature-x was never recorded")


def github_push(demo: Demo) -> str:
    hello = demo.services["hello"]
    status, answer = push_webhook(demo.target, "github", "Codertocat/Hello-World", "master", None)
    expect(status == 202, f"the webhook answered {status}: {answer}")
    (deployment,) = demo.wait_until_settled(hello, 1)
    expect(deployment.status == "succeeded", f"the GitHub push ended {deployment.status}")
    return f"signed GitHub push -> webhook 202 -> StartDeployment on hello -> succeeded ({deployment.commit})"


# --- on call: the operator commands -------------------------------------------------------------------


def manual_deploy(demo: Demo) -> str:
    staging = demo.services["web-staging"]
    actor = demo.actor
    queued = demo.operator.deploy(staging, reason=ACTOR_REASON, actor=actor)
    deployment = demo.wait_until_settled(staging, 2)[-1]
    expect(deployment.id == queued.id, "the manual deploy should be the newest deployment of web-staging")
    expect(deployment.status == "succeeded", f"the manual deploy ended {deployment.status}")
    expect((deployment.actor, deployment.reason) == (actor, ACTOR_REASON), "who asked and why are recorded")
    return f"pushdeploy deploy web-staging -> StartDeployment -> succeeded, recorded as asked by {actor}"


def pause_and_resume(demo: Demo) -> str:
    prod = demo.services["web-prod"]
    actor = demo.actor
    demo.operator.pause(prod, reason="demo: incident on web-prod", actor=actor)
    before = len(demo.ledger.for_service(prod, limit=None))
    for tag in ("v1.7.0", "v1.7.1"):
        demo.push_and_record(tag)
    held = demo.ledger.held(prod)
    expect(len(held) == 2, f"both pushes should be held while paused, {len(held)} are")
    expect(not demo.configured_image(prod).endswith(held[0].digest or ""), "nothing deploys while paused")
    demo.operator.resume(prod, actor=actor)
    by_tag = {d.tag: d for d in demo.wait_until_settled(prod, before + 2)[before:]}
    expect(by_tag["v1.7.0"].status == "superseded", "the older held push should be superseded")
    expect(by_tag["v1.7.1"].status == "succeeded", "resume should deploy the newest held push")
    return "pause web-prod; v1.7.0 and v1.7.1 held; resume -> v1.7.1 deployed, v1.7.0 superseded"


def operator_rollback(demo: Demo) -> str:
    prod = demo.services["web-prod"]
    good = next(d for d in demo.ledger.for_service(prod, limit=None) if d.tag == "v1.5.3")
    before = len(demo.ledger.for_service(prod, limit=None))
    demo.operator.rollback(prod, reason="demo: v1.7.1 misbehaves", actor=demo.actor)
    deployment = demo.wait_until_settled(prod, before + 1)[-1]
    expect(deployment.status == "succeeded", f"the rollback ended {deployment.status}")
    expect(deployment.digest == good.digest, "the rollback should pin the previous good digest (v1.5.3)")
    expect(demo.configured_image(prod).endswith(good.digest or "-"), "web-prod should run v1.5.3 again")
    return f"pushdeploy rollback web-prod -> UpdateService to v1.5.3's digest {(good.digest or '')[:19]}..."


# --- gates: a scan, a promotion and an approval --------------------------------------------------------


def pushed_image(demo: Demo, image: str) -> str:
    """`pushdeploy --local push-image REPO:TAG`: the digest it printed."""
    digest = demo.pushdeploy("push-image", image).strip()
    expect(digest.startswith("sha256:"), f"push-image {image} printed {digest!r}, not a digest")
    return digest


def scanned(demo: Demo, image: str, critical: int) -> Deployment:
    """Push worker:TAG, see it held for its scan, end the scan with `critical` findings: its deployment,
    once ended."""
    worker = demo.services["worker"]
    digest = pushed_image(demo, image)
    held = demo.deployment_on(worker, digest)
    expect(held.held_by == ("scan",), f"{image} should wait for its scan, held_by is {held.held_by}")
    demo.pushdeploy("simulate", "scan", f"worker@{digest}", "--critical", str(critical))
    return demo.settled(held)


def scan_gate(demo: Demo) -> str:
    flagged = scanned(demo, "worker:v1.0.0", critical=2)
    expect(flagged.status == "rejected", f"an image with 2 critical findings ended {flagged.status}")
    expect("2 critical (max 0)" in (flagged.detail or ""), f"the reason should count them: {flagged.detail}")
    clean = scanned(demo, "worker:v1.0.1", critical=0)
    expect(clean.status == "succeeded", f"a clean image ended {clean.status}")
    expect(demo.configured_image(demo.services["worker"]).endswith(clean.digest or "-"), "worker runs it")
    demo.pushdeploy("deployments", "list", "--service", "worker")
    return f"worker:v1.0.0 {flagged.detail}; worker:v1.0.1 scanned clean -> deployed"


def promotion(demo: Demo) -> str:
    staging, prod = demo.services["api-staging"], demo.services["api-prod"]
    digest = pushed_image(demo, "api:v2.0.0")
    waiting = demo.deployment_on(prod, digest)
    expect(waiting.held_by == ("approval", "promotion"), f"api-prod should wait, held_by {waiting.held_by}")
    on_staging = demo.settled(demo.deployment_on(staging, digest))
    expect(on_staging.status == "succeeded", f"api:v2.0.0 ended {on_staging.status} on api-staging")
    demo.pushdeploy("deployments", "list", "--service", "api-prod")
    baked = demo.poll("bake on api-staging", lambda: _awaiting_approval_only(demo, waiting))
    demo.pushdeploy("status", "api-prod")
    demo.pushdeploy("approve", baked.id, "--reason", APPROVE_REASON)
    deployed = demo.settled(baked)
    expect(deployed.status == "succeeded", f"the approved deployment ended {deployed.status}")
    expect(demo.configured_image(prod) == f"{REGISTRY}/api@{digest}", "api-prod should run the same digest")
    approval = deployed.gate_facts.get("approval") or {}
    expect((approval.get("by"), approval.get("reason")) == (demo.actor, APPROVE_REASON), "who approved, why")
    return (
        f"api:v2.0.0 succeeded on api-staging; api-prod held (approval, promotion), baked {BAKE} -> held "
        f"(approval); approve -> api@{digest[:19]}... deployed to api-prod"
    )


def _awaiting_approval_only(demo: Demo, deployment: Deployment) -> Deployment | None:
    """The deployment once its promotion gate has opened (the reconciler's tick after the bake)."""
    now = demo.ledger.deployment(deployment.id)
    if now is not None and str(now.status) != "held":
        raise DemoFailed(f"api-prod's deployment ended {now.status} before its approval: {now.detail}")
    return now if now is not None and now.held_by == ("approval",) else None


def status(demo: Demo) -> str:
    statuses = [demo.operator.status(service) for service in demo.services.values()]
    drifting = [s["name"] for s in statuses if s["drift"]]
    expect(not drifting, f"App Runner and the ledger disagree on {', '.join(drifting)}")
    expect(all(s["live"] for s in statuses), "every service should have a live deployment")
    demo.statuses = statuses
    return f"pushdeploy status: {len(statuses)} services, App Runner and the ledger agree (no drift)"


SCENARIO: tuple[tuple[str, Callable[[Demo], str]], ...] = (
    ("exact tag: push web:latest", exact_tag),
    ("semver rule pins a digest: push web:v1.4.0", semver_pin),
    ("burst during a deployment: v1.5.0 .. v1.5.3", burst),
    ("a failing image is rolled back by App Runner", rolled_back_by_app_runner),
    ("a push no rule matches", no_match),
    ("a signed GitHub push through the webhook", github_push),
    ("on call: a manual deploy", manual_deploy),
    ("on call: pause, two pushes held, resume", pause_and_resume),
    ("on call: roll back to the previous good digest", operator_rollback),
    ("gates: a push blocked by its scan, a clean one deployed", scan_gate),
    ("gates: promoted from api-staging after its bake and an approval", promotion),
    ("on call: status", status),
)


def status_table(statuses: list[dict[str, Any]]) -> Table:
    table = Table(title="pushdeploy status", title_justify="left", expand=True)
    for column in ("service", "App Runner", "runs", "live (ledger)", "drift", "last"):
        table.add_column(column, overflow="fold")
    for entry in statuses:
        configured = entry["configured"]
        runs = configured["image"] or f"{configured['repository_url']}#{configured['branch']}"
        live = entry["live"] or {}
        what = live.get("tag") or (live.get("commit") or "")[:8] or "as configured"
        table.add_row(
            entry["name"],
            entry["apprunner_status"],
            runs.rsplit("/", 1)[-1],
            f"{what} ({live.get('trigger', '-')})",
            "DRIFT" if entry["drift"] else "no",
            entry["last_outcome"] or "-",
        )
    return table


def run(state_dir: Path, console: Console) -> bool:
    began = time.monotonic()
    options = CloudOptions(
        state_dir=state_dir,
        template=default_template(),
        operation_seconds=OPERATION_SECONDS,
        reconcile_seconds=RECONCILE_SECONDS,
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
    if demo.statuses:
        console.print()
        console.print(status_table(demo.statuses))
    verdict = "[green]PASS[/]" if passed else "[bold red]FAIL[/]"
    console.print(f"\n{verdict} {summary(demo.steps, settled)}")
    console.print(f"[dim]in {time.monotonic() - began:.0f} s[/]")
    if passed:
        console.print(NEXT_STEPS)
    return passed


def summary(steps: list[Step], deployments: list[Deployment]) -> str:
    """The same line on every run that passes: steps, then deployments by status."""
    passed = sum(1 for step in steps if step.ok)
    return (
        f"{passed}/{len(SCENARIO) + 1} steps, {len(deployments)} deployments ({status_counts(deployments)})"
    )


def _scene(demo: Demo, state_dir: Path, startup: float) -> str:
    create_services(demo)
    installed = install_rules(demo, state_dir)
    return f"ready in {startup:.1f} s; {len(demo.services)} services; {installed}"


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
    # Its own file: the live view's refreshes must not land in what a `pushdeploy` command printed.
    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 132)
    if args.state_dir:
        args.state_dir.mkdir(parents=True, exist_ok=True)
        return 0 if run(args.state_dir, console) else 1
    with tempfile.TemporaryDirectory(prefix="pushdeploy-demo-") as tmp:
        return 0 if run(Path(tmp), console) else 1


if __name__ == "__main__":
    sys.exit(main())
