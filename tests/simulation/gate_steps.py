"""The gate steps of an episode, and how quiescence ends every hold that can end.

- `scan`: an image's scan ends: one of the last few digests pushed that has no finished scan (older ones
  may never be scanned). ECR holds the result (`World.record_scan`); its event (ECR's or Inspector's) goes
  to the image-pushed function like any event: delivered (with the step's fault), held back and delivered
  late, or lost (then only the reconciler's look at ECR finds it).
- `decide`: an operator approves a held deployment that awaits approval, or rejects a held one, through
  the same `Operator` the CLI uses, in a process of its own (its own controller). It may crash or be
  overlapped like an invocation; an approval counts from when the ledger holds it. With nothing held,
  it asks about a recent deployment that is not (and is refused).
- `gate_time`: time moves to just before, onto or just past the next window or freeze edge.

Quiescence approves whatever awaits approval, and moves time on to when the next hold can end (a window
opens, a freeze ends, a scan's wait or a bake is over) instead of its usual step, until none can.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pushdeploy import runtime
from pushdeploy.operators import Operator, Refusal
from tests.simulation.gating import BAKE_SECONDS, SCAN_WAIT_SECONDS
from tests.simulation.hooks import SimulatedCrash
from tests.simulation.invariants import status_of
from tests.simulation.schedule import Fault, Step, digest_of

if TYPE_CHECKING:
    from tests.simulation.engine import Episode

_RECENT = 4  # a scan ends for one of the last few digests pushed
_ACTOR = "arn:aws:iam::111122223333:user/on-call"
_SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event"}


class GateSteps:
    def __init__(self, episode: Episode) -> None:
        self.episode = episode
        self._operator: Operator | None = None

    @property
    def operator(self) -> Operator:
        """The CLI's operator, on a controller of its own (made once: the rules never change)."""
        if self._operator is None:
            self._operator = Operator(runtime.make_controller())
        return self._operator

    def execute(self, step: Step) -> None:
        if step.kind == "scan":
            self._scan(step)
        elif step.kind == "decide":
            self._decide(step.pick, step.approve, step.fault)
        else:
            self._to_edge(step.seconds)

    # --- scans ------------------------------------------------------------------------------------

    def _scan(self, step: Step) -> None:
        from tests.simulation.engine import Delivery  # the engine imports this module

        episode, world = self.episode, self.episode.world
        candidates = self._unscanned()
        if not candidates:
            return
        assert step.status is not None
        assert step.event is not None
        digest = candidates[step.pick % len(candidates)]
        if not world.record_scan(digest, step.status, step.counts):
            episode.counts["scan_of_gone_image"] += 1
            return
        episode.counts["scans"] += 1
        if step.lose:
            episode.counts["lost_scan_event"] += 1
            return
        delivery = Delivery("image_pushed", world.scan_event(digest, step.status, step.counts, step.event))
        if step.hold:
            episode.counts["late"] += 1
            episode.held.append(delivery)
            return
        episode._deliver(delivery, step.fault)

    def _unscanned(self) -> list[int]:
        """The last few digests pushed without a finished scan, newest first."""
        log = self.episode.world.gate_log
        recent: list[int] = []
        for push in reversed(self.episode.pushes.values()):
            if push.kind != "image" or push.number in recent:
                continue
            recent.append(push.number)
            if len(recent) == _RECENT:
                break
        return [number for number in recent if log.finished_scan(digest_of(number)) is None]

    # --- operators --------------------------------------------------------------------------------

    def _decide(self, pick: int, approve: bool, fault: Fault | None) -> None:
        held = self._held()
        candidates = [d for d in held if "approval" in d.held_by] if approve else held
        if not candidates:
            candidates = self._recent()
        if not candidates:
            return
        target = candidates[pick % len(candidates)]
        self.decide(target.id, approve, fault)

    def decide_first(self) -> None:
        """An approval inside another invocation (an overlap): the oldest held deployment that awaits
        one, else a reconciler run as other overlaps fall back to."""
        awaiting = [d for d in self._held() if "approval" in d.held_by]
        if awaiting:
            self.decide(awaiting[0].id, True, None)
        else:
            self.episode._invoke("reconciler", _SCHEDULED, None)

    def decide(self, deployment_id: str, approve: bool, fault: Fault | None) -> None:
        operator = self.operator
        verb = operator.approve if approve else operator.reject
        self._operate(lambda: verb(deployment_id, reason="simulated", actor=_ACTOR), fault)
        self._note_approval(deployment_id)

    def _operate(self, command: Callable[[], Any], fault: Fault | None) -> None:
        """One operator command, hooked like an invocation: its calls are pushdeploy's, and it may crash
        (the CLI's process dies) or be overlapped."""
        episode = self.episode
        episode.hooks.begin(None if episode.quiescing else fault)
        try:
            command()
            episode.counts["decided"] += 1
        except SimulatedCrash:
            episode.counts["decide_crashed"] += 1
        except Refusal:
            episode.counts["decide_refused"] += 1
        except Exception as error:
            episode.counts["handler_error"] += 1
            episode.handler_errors[f"decide: {type(error).__name__}: {str(error)[:160]}"] += 1
        finally:
            episode.hooks.end()

    def _note_approval(self, deployment_id: str) -> None:
        """An approval counts from when the ledger holds it (a command that crashed may have left it)."""
        log = self.episode.world.gate_log
        if deployment_id in log.approvals:
            return
        deployment = self.episode.cloud.ledger.deployment(deployment_id)
        approval = (getattr(deployment, "gate_facts", None) or {}).get("approval") or {}
        if approval.get("approved") is True:
            log.approvals[deployment_id] = self.episode.world.now()

    def _held(self) -> list[Any]:
        """The held deployments of the gated rules, oldest first, read from the ledger now."""
        return [d for d in self._gated_deployments() if status_of(d) == "held"]

    def _recent(self) -> list[Any]:
        return self._gated_deployments()[-3:]

    def _gated_deployments(self) -> list[Any]:
        episode, world = self.episode, self.episode.world
        found = [
            deployment
            for role, arn in world.services.items()
            if world.gating.of(role) is not None and role not in world.vanished
            for deployment in episode.cloud.deployments(arn)
        ]
        return sorted(found, key=lambda d: (d.created_at, d.id))

    # --- time -------------------------------------------------------------------------------------

    def _to_edge(self, offset: int) -> None:
        world = self.episode.world
        now = world.gate_log.offset(world.now())
        ahead = [edge + offset for edge in world.gating.edges() if edge + offset > now]
        world.advance(ahead[0] - now if ahead else 60)

    # --- quiescence -------------------------------------------------------------------------------

    def end_holds(self) -> None:
        """The operator's last word: approve everything that awaits approval."""
        for deployment in self._held():
            if "approval" in deployment.held_by:
                self.decide(deployment.id, True, None)

    def next_opening(self) -> datetime | None:
        """The earliest moment after now when a held deployment's gate opens with time alone (a window
        opens, a freeze ends, the scan's wait or the bake is over): None when no hold can end so."""
        world, now = self.episode.world, self.episode.world.now()
        moments = [
            moment
            for deployment in self._held()
            for moment in self._openings(deployment, now)
            if moment > now
        ]
        return min(moments, default=None) if world.gating.any else None

    def holds_pending(self) -> bool:
        """Whether a hold may still end: one awaits approval, or time alone will open one."""
        awaiting = any("approval" in d.held_by for d in self._held())
        return awaiting or self.next_opening() is not None

    def quiet_advance(self, usual: float) -> float:
        """How far quiescence moves time: its usual step, or on to when the next hold can end."""
        opening = self.next_opening()
        if opening is None:
            return usual
        return max(usual, (opening - self.episode.world.now()).total_seconds())

    def _openings(self, deployment: Any, now: datetime) -> list[datetime]:
        world = self.episode.world
        role = next(r for r, arn in world.services.items() if arn == deployment.service)
        gates = world.gating.of(role)
        if gates is None:
            return []
        moments = []
        opens = world.gate_log.time_gates_open_from(gates, now)
        if opens is not None:
            moments.append(opens)
        if gates.scan in ("deploy", "reject"):
            moments.append(deployment.created_at + timedelta(seconds=SCAN_WAIT_SECONDS + 1))
        if gates.after is not None:
            moments.extend(self._bakes(gates.after, deployment))
        return moments

    def _bakes(self, upstream: str, deployment: Any) -> list[datetime]:
        """When the artifact's bake on the upstream rule's service ends, by the ledger (pushdeploy opens
        the gate from when it learnt of the success)."""
        arn = self.episode.world.services[upstream]
        return [
            d.settled_at + timedelta(seconds=BAKE_SECONDS + 1)
            for d in self.episode.cloud.deployments(arn)
            if status_of(d) == "succeeded" and d.artifact == deployment.artifact and d.settled_at
        ]
