"""What an operator asks of pushdeploy: deploy by hand, roll back, pause and resume, and what is live.

Each command is one entry point and goes through the same queue as pushes (the controller's admission:
one operation per service, recorded in the ledger with who asked and why). It takes the controller for
its ledger, deploy target and slots, and adds nothing to it.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from pushdeploy.adapters.apprunner import ServiceView, TargetGone
from pushdeploy.controller import Controller
from pushdeploy.domain.changes import partition_of_region, registry_host
from pushdeploy.domain.deployments import Deployment, Status, Trigger, gated
from pushdeploy.domain.order import compare
from pushdeploy.domain.slot import Pause, Slot, paused, resumed
from pushdeploy.errors import PushdeployError
from pushdeploy.gatekeeper import GateError
from pushdeploy.slots import SlotChange, transition

_ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[^:@]+)(?::(?P<tag>[^@]+)|@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
_SETTLED_OUTCOMES = frozenset(
    {Status.SUCCEEDED, Status.FAILED, Status.ROLLED_BACK, Status.ERROR, Status.REJECTED}
)


class Refusal(PushdeployError):
    """The command cannot be done as asked (exit status 2): the message says why."""


@dataclass(frozen=True)
class ImageRef:
    """An image of a private ECR repository: where it is, and the digest to pin."""

    account: str
    region: str
    repository: str
    digest: str
    tag: str | None = None

    def identifier(self) -> str:
        host = registry_host(self.account, self.region, partition_of_region(self.region))
        return f"{host}/{self.repository}@{self.digest}"


@dataclass(frozen=True)
class ConfiguredImage:
    """An image service's ImageIdentifier, read."""

    account: str
    region: str
    repository: str
    tag: str | None
    digest: str | None


def parse_image_identifier(identifier: str) -> ConfiguredImage | None:
    """A private ECR image identifier's parts; None for ECR Public or anything else."""
    found = _ECR_IMAGE.match(identifier)
    if found is None:
        return None
    return ConfiguredImage(
        found["account"], found["region"], found["repository"], found["tag"], found["digest"]
    )


class Operator:
    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.ledger = controller.ledger
        self.target = controller.target
        self.clock = controller.clock

    # --- deploy and rollback -----------------------------------------------------------------------

    def deploy(
        self,
        service: str,
        *,
        image: ImageRef | None = None,
        reason: str | None = None,
        force: bool = False,
        actor: str | None = None,
    ) -> Deployment:
        """App Runner's manual deployment, queued and recorded: StartDeployment of what the service is
        configured with, or (with `image`) UpdateService pinned to that digest."""
        view = self._describe(service)
        if image is not None and view.is_code:
            raise Refusal(f"{_name(service)} deploys from code: --image applies to image services only")
        why = reason or (
            "manual deploy" if image is None else f"manual deploy of {image.tag or image.digest}"
        )
        deployment = self._new(service, view, image, why, actor, "manual")
        return self._admit(deployment, force=force)

    def rollback(
        self, service: str, *, to: str | None = None, reason: str | None = None, actor: str | None = None
    ) -> Deployment:
        """Deploy again, pinned by digest, the artifact of the newest succeeded deployment before the live
        one (or of deployment `to`)."""
        view = self._describe(service)
        if view.is_code:
            raise Refusal(
                f"{_name(service)} deploys from code: App Runner deploys a branch's head and cannot pin a "
                "commit, so it cannot be rolled back; push a revert instead"
            )
        target = self._rollback_target(service, to)
        if not (target.digest and target.account and target.region):
            raise Refusal(f"deployment {target.id} names no ECR image digest to pin")
        image = ImageRef(target.account, target.region, target.repository, target.digest, target.tag)
        why = reason or f"rollback to {target.tag or target.digest} (deployment {target.id})"
        deployment = self._new(service, view, image, why, actor, "rollback")
        return self._admit(deployment, force=False)

    def take_over(self, service: str, *, actor: str | None = None) -> Deployment:
        """Switch a service in automatic deployment mode to manual, through its queue: App Runner would
        otherwise deploy every push as well as pushdeploy."""
        view = self._describe(service)
        if not view.auto_deployments:
            raise Refusal(f"{_name(service)} is already in manual deployment mode")
        reason = "take over: switch to manual deployment, so that only pushdeploy deploys pushes"
        deployment = self._new(service, view, None, reason, actor, "take-over")
        deployment = deployment.model_copy(update={"action": "update_service", "image": view.image})
        return self._admit(deployment, force=True)

    def _rollback_target(self, service: str, to: str | None) -> Deployment:
        history = self.ledger.for_service(service, limit=None)  # newest first
        if to is not None:
            chosen = next((d for d in history if d.id == to), None)
            if chosen is None:
                raise Refusal(f"no deployment {to} on {_name(service)}")
            if not chosen.digest:
                raise Refusal(f"deployment {to} has no image digest to pin")
            return chosen
        succeeded = [d for d in history if d.status is Status.SUCCEEDED and d.digest]
        slot = self.ledger.slot(service)
        live_id = slot.live.id if slot.live else (succeeded[0].id if succeeded else None)
        live = next((d for d in history if d.id == live_id), None)
        if live is None:
            raise Refusal(f"nothing to roll back: no deployment of {_name(service)} has succeeded")
        earlier = [d for d in succeeded if d.created_at < live.created_at and d.digest != live.digest]
        if not earlier:
            raise Refusal(
                f"nothing to roll back to: no succeeded deployment of {_name(service)} before the live one "
                f"({live.id}) deployed another image"
            )
        return earlier[0]

    def _new(
        self,
        service: str,
        view: ServiceView,
        image: ImageRef | None,
        reason: str,
        actor: str | None,
        trigger: Trigger,
    ) -> Deployment:
        now = self.clock()
        configured = parse_image_identifier(view.image) if view.image else None
        repository = image.repository if image else (configured.repository if configured else view.configured)
        return Deployment(
            id=str(uuid.uuid4()),
            service=service,
            rule=None,
            action="update_service" if image else "start_deployment",
            status=Status.QUEUED,
            image=image.identifier() if image else None,
            tag=image.tag if image else None,
            digest=image.digest if image else None,
            branch=view.branch,
            source="manual",
            repository=repository or "",
            account=image.account if image else (configured.account if configured else None),
            region=image.region if image else (configured.region if configured else None),
            reason=reason,
            change_id=None,
            actor=actor,
            trigger=trigger,
            pushed_at=now,
            created_at=now,
        )

    def _admit(self, deployment: Deployment, force: bool) -> Deployment:
        change, refusal = self.controller.admit(deployment, force=force)
        if change is None:
            raise Refusal((refusal or "not deployed").removeprefix("not deployed: "))
        recorded = self.ledger.deployment(deployment.id)
        assert recorded is not None
        return recorded

    # --- pause and resume --------------------------------------------------------------------------

    def pause(self, service: str, *, reason: str, actor: str | None = None) -> Pause:
        """Hold every deployment a push would start on the service until it is resumed. An operation
        already running goes on: App Runner has no cancel."""
        self._describe(service)
        pause = Pause(reason, actor, self.clock())
        already: list[Pause] = []

        def plan(slot: Slot) -> SlotChange | None:
            if slot.paused is not None:
                already.append(slot.paused)
                return None
            return SlotChange(paused(slot, pause))

        if self.controller.slots.change(service, plan) is None:
            raise Refusal(f"{_name(service)} is already paused: {_pause_text(already[-1])}")
        return pause

    def resume(self, service: str, *, discard: bool = False, actor: str | None = None) -> list[Deployment]:
        """Deploy again on push. The newest held deployment is admitted (unless `discard`), the others
        are superseded. Returns the held deployments as they ended."""
        was_paused = []

        def plan(slot: Slot) -> SlotChange | None:
            if slot.paused is None:
                return None
            was_paused.append(slot.paused)
            return SlotChange(resumed(slot))

        self.controller.slots.change(service, plan)
        all_held = self.ledger.held(service)
        if not was_paused and not all_held:
            raise Refusal(f"{_name(service)} is not paused")
        # A deployment of a rule with gates is looked at again (unpaused now): it starts only if they are
        # open, whatever they were when the service was paused.
        gatekeeper = self.controller.gates
        held = (
            all_held
            if discard
            else [h for h in all_held if not gated(h.held_by) and not gatekeeper.governs(h)]
        )
        for deployment in all_held:
            if deployment not in held:
                gatekeeper.review(deployment)
        keep = None if discard or not held else newest(held)
        who = f" by {actor}" if actor else ""
        for deployment in held:
            if deployment is keep:
                continue
            detail = (
                f"discarded when the service was resumed{who}"
                if discard
                else f"superseded by the newer held deployment {keep.id if keep else ''} on resume{who}"
            )
            self._supersede_held(deployment, detail, keep.id if keep else None)
        if keep is not None:
            self._release(keep)
        return [d for d in (self.ledger.deployment(h.id) for h in all_held) if d is not None]

    def _supersede_held(self, deployment: Deployment, detail: str, by: str | None) -> None:
        moved = transition(
            deployment.id,
            Status.HELD,
            Status.SUPERSEDED,
            settled_at=self.clock(),
            superseded_by=by,
            detail=detail,
        )
        if self.ledger.update(moved):
            self.controller.slots.notify(deployment.id, "Superseded")

    def _release(self, deployment: Deployment) -> None:
        """Admit a held deployment now that nothing holds it; one the service has moved past is superseded
        with the reason."""
        change, refusal = self.controller.admit(deployment)
        if change is None:
            self._supersede_held(deployment, refusal or "not deployed", None)

    # --- approvals ---------------------------------------------------------------------------------

    def approve(
        self, deployment_id: str, *, reason: str | None = None, actor: str | None = None
    ) -> Deployment:
        """Open the approval gate of a held deployment; it starts once every other gate is open too."""
        return self._decide(deployment_id, approved=True, reason=reason, actor=actor)

    def reject(
        self, deployment_id: str, *, reason: str | None = None, actor: str | None = None
    ) -> Deployment:
        """Say no to a held deployment that awaits approval: it is `rejected`, with who and why."""
        return self._decide(deployment_id, approved=False, reason=reason, actor=actor)

    def _decide(
        self, deployment_id: str, *, approved: bool, reason: str | None, actor: str | None
    ) -> Deployment:
        try:
            return self.controller.gates.decide(deployment_id, approved=approved, actor=actor, reason=reason)
        except GateError as refused:
            raise Refusal(str(refused)) from None

    # --- what is live ------------------------------------------------------------------------------

    def status(self, service: str) -> dict[str, Any]:
        """App Runner's truth about the service and pushdeploy's record beside it (DESIGN 4.6)."""
        try:
            view: ServiceView | None = self.target.describe(service)
        except TargetGone:
            view = None
        slot = self.ledger.slot(service)
        history = self.ledger.for_service(service, limit=None)
        by_id = {d.id: d for d in history}
        live = by_id.get(slot.live.id) if slot.live else None
        drift = False
        if view is not None and slot.live is not None and live is not None:
            drift = not self.controller.runs(service, slot.live)
        settled = [d for d in history if d.status in _SETTLED_OUTCOMES]
        return {
            "service": service,
            "name": _name(service),
            "apprunner_status": view.status if view else "NOT_FOUND",
            "auto_deployments": view.auto_deployments if view else False,
            "configured": {
                "image": view.image if view else None,
                "repository_url": view.repository_url if view else None,
                "branch": view.branch if view else None,
            },
            "live": live.public_view() if live else None,
            "drift": drift,
            "in_flight": _view(by_id.get(slot.active_id or "")),
            "pending": _view(by_id.get(slot.pending_id or "")),
            "held": [d.public_view() for d in history if d.status is Status.HELD],
            "paused": _pause_record(slot.paused),
            "last_outcome": str(settled[0].status) if settled else None,
        }

    def _describe(self, service: str) -> ServiceView:
        try:
            return self.target.describe(service)
        except TargetGone as gone:
            raise Refusal(f"{_name(service)} cannot be deployed to: {gone}") from None


def newest(held: list[Deployment]) -> Deployment:
    """The newest of held deployments: by their rule's order when they are of one rule, else by time."""
    best = held[0]
    for candidate in held[1:]:
        if candidate.rule is not None and candidate.rule == best.rule and candidate.order == best.order:
            if compare(candidate.position, best.position) > 0:
                best = candidate
        elif candidate.created_at > best.created_at:
            best = candidate
    return best


def _view(deployment: Deployment | None) -> dict[str, Any] | None:
    return deployment.public_view() if deployment else None


def _pause_record(pause: Pause | None) -> dict[str, Any] | None:
    if pause is None:
        return None
    return {"reason": pause.reason, "by": pause.by, "at": pause.at.strftime("%Y-%m-%dT%H:%M:%SZ")}


def _pause_text(pause: Pause) -> str:
    by = f" by {pause.by}" if pause.by else ""
    return f"{pause.reason}{by} at {pause.at.strftime('%Y-%m-%dT%H:%M:%SZ')}"


def _name(service: str) -> str:
    parts = service.split("/")
    return parts[1] if len(parts) == 3 else service
