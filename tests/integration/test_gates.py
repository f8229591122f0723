"""Gates through the real handlers (DESIGN 4.7): a push's deployment waits as `held` until every gate of
its rule opens, is admitted then like any push, or is `rejected` when a gate says no; held deployments
never hold the service's slot, and the newest held one of a rule supersedes the older ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pushdeploy import runtime
from pushdeploy.controller import Controller
from pushdeploy.domain.deployments import Deployment
from pushdeploy.gatekeeper import GateError
from tests.integration.harness import Cloud

DIGESTS = [f"sha256:{n:064x}" for n in range(1, 30)]
APPROVAL = {"approval": {"required": True, "timeout": "24h"}}


def engine() -> Controller:
    return runtime.make_controller()


def image_rule(
    rule_id: str, service: str, gates: dict[str, Any] | None = None, **image: str
) -> dict[str, Any]:
    rule: dict[str, Any] = {"id": rule_id, "service": service, "image": {"repository": "web", **image}}
    if gates is not None:
        rule["gates"] = gates
    return rule


@pytest.fixture
def prod(cloud: Cloud) -> str:
    service = cloud.create_image_service("web-prod", tag="v1.0.0")
    cloud.apply_rules([image_rule("web-prod", service, APPROVAL, semver="^1.0.0")])
    cloud.sim.calls.clear()
    cloud.published()
    return service


def only(cloud: Cloud, service: str) -> Deployment:
    (deployment,) = cloud.deployments(service)
    return deployment


def published_types(cloud: Cloud) -> list[str]:
    return [event["detail-type"] for event in cloud.published()]


# --- approval ----------------------------------------------------------------------------------------


def test_a_deployment_awaiting_approval_is_held_and_says_so(cloud: Cloud, prod: str) -> None:
    answer = cloud.push_image("v1.1.0", DIGESTS[0])
    held = only(cloud, prod)
    assert (str(held.status), held.held_by) == ("held", ("approval",))
    assert "awaits approval" in (held.detail or "")
    assert answer["deployments"] == [held.id]
    assert cloud.sim.calls == []  # App Runner is not called while a gate is closed
    assert published_types(cloud) == ["Deployment Held", "Deployment Awaiting Approval"]


def test_an_approval_starts_it_and_records_who_approved_and_why(cloud: Cloud, prod: str) -> None:
    cloud.push_image("v1.1.0", DIGESTS[0])
    held = only(cloud, prod)
    engine().gates.decide(
        held.id, approved=True, actor="arn:aws:iam::111122223333:user/alice", reason="CAB-42"
    )
    started = only(cloud, prod)
    assert str(started.status) == "in_progress"
    assert started.gate_facts["approval"]["by"] == "arn:aws:iam::111122223333:user/alice"
    assert started.gate_facts["approval"]["reason"] == "CAB-42"
    assert len(cloud.calls("UpdateService")) == 1
    cloud.finish_operations()
    assert str(only(cloud, prod).status) == "succeeded"


def test_a_rejection_ends_it_with_the_reason_and_app_runner_is_never_called(cloud: Cloud, prod: str) -> None:
    cloud.push_image("v1.1.0", DIGESTS[0])
    held = only(cloud, prod)
    cloud.published()
    engine().gates.decide(held.id, approved=False, actor="bob", reason="not this week")
    rejected = only(cloud, prod)
    assert str(rejected.status) == "rejected"
    assert rejected.detail == "rejected: approval: rejected by bob: not this week"
    assert cloud.sim.calls == []
    assert published_types(cloud) == ["Deployment Rejected"]


def test_no_approval_within_the_timeout_rejects_it_on_the_reconcilers_tick(cloud: Cloud, prod: str) -> None:
    cloud.push_image("v1.1.0", DIGESTS[0])
    cloud.advance(23 * 3600)
    cloud.reconcile()
    assert str(only(cloud, prod).status) == "held"
    cloud.advance(3600)
    cloud.reconcile()
    rejected = only(cloud, prod)
    assert str(rejected.status) == "rejected"
    assert "no approval within 24h" in (rejected.detail or "")


def test_only_a_deployment_awaiting_approval_can_be_approved(cloud: Cloud, prod: str) -> None:
    with pytest.raises(GateError, match="no deployment"):
        engine().gates.decide("nope", approved=True, actor=None, reason=None)
    cloud.push_image("v1.1.0", DIGESTS[0])
    held = only(cloud, prod)
    engine().gates.decide(held.id, approved=True, actor=None, reason=None)
    with pytest.raises(GateError, match="does not await approval"):
        engine().gates.decide(held.id, approved=False, actor=None, reason=None)


# --- held deployments and the slot -----------------------------------------------------------------


def test_the_newest_held_deployment_of_a_rule_supersedes_the_older_ones(cloud: Cloud, prod: str) -> None:
    cloud.push_image("v1.1.0", DIGESTS[0])
    cloud.push_image("v1.3.0", DIGESTS[1])
    cloud.push_image("v1.2.0", DIGESTS[2])  # older than the held v1.3.0, though it came later: refused
    by_version = {d.version: d for d in cloud.deployments(prod)}
    assert {v: str(d.status) for v, d in by_version.items()} == {"v1.1.0": "superseded", "v1.3.0": "held"}
    assert by_version["v1.1.0"].superseded_by == by_version["v1.3.0"].id


def test_a_held_deployment_never_holds_the_slot_other_rules_deploy(cloud: Cloud, prod: str) -> None:
    cloud.apply_rules(
        [
            image_rule("web-prod", prod, APPROVAL, semver="^1.0.0"),
            image_rule("web-hotfix", prod, tag_glob="hotfix-*"),
        ]
    )
    cloud.push_image("v1.1.0", DIGESTS[0])
    cloud.push_image("hotfix-1", DIGESTS[1])
    statuses = {d.rule: str(d.status) for d in cloud.deployments(prod)}
    assert statuses == {"web-prod": "held", "web-hotfix": "in_progress"}


def test_a_paused_service_keeps_an_approved_deployment_held_until_resumed(cloud: Cloud, prod: str) -> None:
    from pushdeploy.operators import Operator

    operator = Operator(engine())
    cloud.push_image("v1.1.0", DIGESTS[0])
    held = only(cloud, prod)
    operator.pause(prod, reason="incident")
    engine().gates.decide(held.id, approved=True, actor="alice", reason=None)
    assert only(cloud, prod).held_by == ("pause",)
    operator.resume(prod)
    assert str(only(cloud, prod).status) == "in_progress"


# --- windows and freezes -----------------------------------------------------------------------------


def at_utc(cloud: Cloud, moment: datetime) -> None:
    """Move the cloud's clock to `moment` (only forward)."""
    ahead = (moment - cloud.now()).total_seconds()
    assert ahead >= 0, "the test's moment is in the cloud's past"
    cloud.advance(ahead)


def next_weekday(cloud: Cloud, weekday: int, hour: int, zone: str = "UTC") -> datetime:
    from zoneinfo import ZoneInfo

    local = cloud.now().astimezone(ZoneInfo(zone)) + timedelta(days=1)
    while local.weekday() != weekday:
        local += timedelta(days=1)
    return local.replace(hour=hour, minute=0, second=0, microsecond=0).astimezone(UTC)


def test_outside_its_window_a_push_waits_and_deploys_when_the_window_opens(cloud: Cloud) -> None:
    service = cloud.create_image_service("web-prod", tag="v1.0.0")
    window = {"windows": [{"days": "mon-fri", "from": "09:00", "to": "17:00", "tz": "Europe/Berlin"}]}
    cloud.apply_rules([image_rule("web-prod", service, window, semver="^1.0.0")])
    at_utc(cloud, next_weekday(cloud, 5, 12, "Europe/Berlin"))  # a Saturday noon in Berlin
    cloud.push_image("v1.1.0", DIGESTS[0])
    held = only(cloud, service)
    assert held.held_by == ("window",)
    assert "outside mon-fri 09:00-17:00 Europe/Berlin" in (held.detail or "")
    at_utc(cloud, next_weekday(cloud, 0, 8, "Europe/Berlin"))  # Monday 08:00 in Berlin: still closed
    cloud.reconcile()
    assert str(only(cloud, service).status) == "held"
    cloud.advance(3600)  # 09:00 in Berlin
    cloud.reconcile()
    assert str(only(cloud, service).status) == "in_progress"


def test_a_freeze_holds_pushes_with_its_reason_until_it_ends(cloud: Cloud) -> None:
    service = cloud.create_image_service("web-prod", tag="v1.0.0")
    start = cloud.now().replace(microsecond=0)
    end = start + timedelta(hours=2)
    freeze = {"freeze": [{"from": start.isoformat(), "to": end.isoformat(), "reason": "holidays"}]}
    cloud.apply_rules([image_rule("web-prod", service, freeze, semver="^1.0.0")])
    cloud.advance(60)
    cloud.push_image("v1.1.0", DIGESTS[0])
    held = only(cloud, service)
    assert held.held_by == ("freeze",)
    assert "frozen (holidays)" in (held.detail or "")
    at_utc(cloud, end)
    cloud.reconcile()
    assert str(only(cloud, service).status) == "in_progress"


# --- promotion ---------------------------------------------------------------------------------------


@pytest.fixture
def stages(cloud: Cloud) -> dict[str, str]:
    """dev -> staging (after dev, bake 30m) -> prod (after staging, bake 1h), one repository."""
    services = {
        name: cloud.create_image_service(f"web-{name}", tag="v1.0.0") for name in ("dev", "staging", "prod")
    }
    cloud.apply_rules(
        [
            image_rule("web-dev", services["dev"], semver="^1.0.0"),
            image_rule(
                "web-staging",
                services["staging"],
                {"after": {"rule": "web-dev", "bake": "30m"}},
                semver="^1.0.0",
            ),
            image_rule(
                "web-prod",
                services["prod"],
                {"after": {"rule": "web-staging", "bake": "1h"}},
                semver="^1.0.0",
            ),
        ]
    )
    cloud.sim.calls.clear()
    return services


def status_on(cloud: Cloud, service: str, digest: str) -> str:
    return next(str(d.status) for d in cloud.deployments(service) if d.digest == digest)


def test_an_artifact_is_promoted_stage_by_stage_after_each_bake(cloud: Cloud, stages: dict[str, str]) -> None:
    cloud.push_image("v1.1.0", DIGESTS[0])
    assert [status_on(cloud, stages[s], DIGESTS[0]) for s in ("dev", "staging", "prod")] == [
        "in_progress",
        "held",
        "held",
    ]
    cloud.finish_operations()  # succeeded on dev
    cloud.advance(29 * 60)
    cloud.reconcile()
    assert status_on(cloud, stages["staging"], DIGESTS[0]) == "held"  # baking on dev
    cloud.advance(2 * 60)
    cloud.reconcile()
    assert status_on(cloud, stages["staging"], DIGESTS[0]) == "in_progress"
    cloud.finish_operations()
    cloud.advance(3600)
    cloud.reconcile()
    assert status_on(cloud, stages["prod"], DIGESTS[0]) == "in_progress"
    cloud.finish_operations()
    assert cloud.configured_image(stages["prod"]).endswith(DIGESTS[0])


def test_a_failure_in_the_middle_stage_stops_the_promotion(cloud: Cloud, stages: dict[str, str]) -> None:
    cloud.push_image("v1.1.0", DIGESTS[0])
    cloud.finish_operations()
    cloud.advance(31 * 60)
    cloud.sim.fail_next(stages["staging"], 1)
    cloud.reconcile()  # staging starts, and fails
    cloud.finish_operations()
    assert status_on(cloud, stages["staging"], DIGESTS[0]) == "rolled_back"
    cloud.advance(2 * 3600)
    cloud.reconcile()
    assert status_on(cloud, stages["prod"], DIGESTS[0]) == "rejected"  # it will never succeed on staging
    assert not any(
        d.digest == DIGESTS[0] and str(d.status) == "in_progress" for d in cloud.deployments(stages["prod"])
    )


def test_a_promotion_whose_artifact_failed_on_the_previous_stage_is_rejected_not_held_forever(
    cloud: Cloud, stages: dict[str, str]
) -> None:
    cloud.sim.fail_next(stages["dev"], 1)
    cloud.push_image("v1.1.0", DIGESTS[0])
    cloud.finish_operations()  # rolled back on dev: never deployed there again automatically
    cloud.reconcile()
    staging = next(d for d in cloud.deployments(stages["staging"]) if d.digest == DIGESTS[0])
    assert str(staging.status) == "rejected"
    assert "on rule web-dev's service, deployment" in (staging.detail or "")
    assert "ended rolled back" in (staging.detail or "")


def test_an_operator_may_end_any_held_deployment(cloud: Cloud, stages: dict[str, str]) -> None:
    cloud.push_image("v1.1.0", DIGESTS[0])
    held = next(d for d in cloud.deployments(stages["prod"]) if d.digest == DIGESTS[0])
    assert held.held_by == ("promotion",)
    ended = engine().gates.decide(held.id, approved=False, actor="carol", reason="not promoting this one")
    assert (str(ended.status), ended.detail) == (
        "rejected",
        "rejected: rejected by carol: not promoting this one",
    )
    with pytest.raises(GateError, match="does not await approval"):
        engine().gates.decide(held.id, approved=True, actor="carol", reason=None)


def test_a_promotion_whose_stage_failed_during_its_bake_is_rejected(
    cloud: Cloud, stages: dict[str, str]
) -> None:
    hotfix = image_rule("web-dev-hotfix", stages["dev"], tag_glob="hotfix-*")
    cloud.apply_rules([*current_rules(cloud), hotfix])
    cloud.push_image("v1.1.0", DIGESTS[0])
    cloud.finish_operations()
    cloud.advance(10 * 60)
    cloud.sim.fail_next(stages["dev"], 1)
    cloud.push_image("hotfix-1", DIGESTS[1])  # another deployment on dev fails during v1.1.0's bake
    cloud.finish_operations()
    cloud.advance(30 * 60)
    cloud.reconcile()
    staging = next(d for d in cloud.deployments(stages["staging"]) if d.digest == DIGESTS[0])
    assert str(staging.status) == "rejected"
    assert "rolled back before its bake of 30m ended" in (staging.detail or "")


def current_rules(cloud: Cloud) -> list[dict[str, Any]]:
    from pushdeploy.adapters.rules_store import RulesStore
    from tests.integration.harness import TABLES

    stored = RulesStore(cloud.dynamodb, TABLES["RulesTable"]).all_rules()
    return [rule.model_dump(exclude_none=True, by_alias=True) for rule in stored]


def test_deployments_list_shows_what_holds_a_held_deployment(cloud: Cloud, prod: str) -> None:
    from pushdeploy.cli.deployments_cmd import render_table

    cloud.push_image("v1.1.0", DIGESTS[0])
    assert "held (approval)" in render_table(cloud.deployments(prod))


def test_a_reconciler_run_that_read_the_deployment_earlier_never_erases_an_approval(cloud: Cloud) -> None:
    service = cloud.create_image_service("web-prod", tag="v1.0.0")
    closed_now = {"days": "mon-sun", "from": "00:00", "to": "00:01", "tz": "UTC"}
    gates = {"windows": [closed_now], **APPROVAL}
    cloud.apply_rules([image_rule("web-prod", service, gates, semver="^1.0.0")])
    at_utc(cloud, cloud.now().replace(hour=12, minute=0) + timedelta(days=1))
    cloud.push_image("v1.1.0", DIGESTS[0])
    stale = only(cloud, service)  # what a reconciler run read before the approval
    engine().gates.decide(stale.id, approved=True, actor="alice", reason=None)
    engine().gates.review(stale)
    held = only(cloud, service)
    assert held.held_by == ("window",)
    assert held.gate_facts["approval"]["by"] == "alice"


# --- held deployments meet pushes outside the slot ----------------------------------------------------


def test_an_older_push_never_deploys_while_a_newer_one_of_its_rule_is_held(cloud: Cloud, prod: str) -> None:
    cloud.push_image("v1.3.0", DIGESTS[0])
    answer = cloud.push_image("v1.2.0", DIGESTS[1])  # late, and older
    assert answer["deployments"] == []
    assert [str(d.status) for d in cloud.deployments(prod)] == ["held"]
    record = cloud.ledger.changes_of_artifact(DIGESTS[1])[0]
    assert "is not newer than v1.3.0, held as" in record["decisions"][0]["note"]


def test_the_same_push_found_twice_is_held_once_and_a_rejected_one_stays_rejected(
    cloud: Cloud, prod: str
) -> None:
    first = cloud.push_image("v1.1.0", DIGESTS[0])
    (held,) = cloud.deployments(prod)
    engine().gates.decide(held.id, approved=False, actor="alice", reason="no")
    cloud.published()
    again = cloud.invoke(
        "image_pushed", cloud.ecr_push_event("v1.1.0", DIGESTS[0])
    )  # another event, one push
    assert again["deployments"] == first["deployments"]
    assert [str(d.status) for d in cloud.deployments(prod)] == ["rejected"]
    assert published_types(cloud) == []  # nobody is asked to approve it again


def test_a_retry_after_a_crash_past_the_hold_tells_the_world_and_replaces_the_older_held(
    cloud: Cloud, prod: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pushdeploy.gatekeeper import GateKeeper

    cloud.push_image("v1.1.0", DIGESTS[0])
    event = cloud.ecr_push_event("v1.2.0", DIGESTS[1])
    cloud.published()

    def crash(self: GateKeeper, newest: Deployment) -> None:
        raise RuntimeError("the Lambda died here")

    with monkeypatch.context() as patch:
        patch.setattr(GateKeeper, "supersede_older_held", crash)
        patch.setattr("pushdeploy.slots.SlotKeeper.notify", lambda *args: None)
        with pytest.raises(RuntimeError):
            cloud.invoke("image_pushed", event)
    assert published_types(cloud) == []
    cloud.invoke("image_pushed", event)  # Lambda's retry of the same event
    by_version = {d.version: str(d.status) for d in cloud.deployments(prod)}
    assert by_version == {"v1.1.0": "superseded", "v1.2.0": "held"}
    assert sorted(published_types(cloud)) == [
        "Deployment Awaiting Approval",
        "Deployment Held",
        "Deployment Superseded",
    ]


# --- gates that close again before the deployment starts -------------------------------------------


def frozen_from_now(cloud: Cloud, hours: int = 2) -> dict[str, Any]:
    start = cloud.now().replace(microsecond=0) + timedelta(minutes=5)
    return {
        "freeze": [
            {
                "from": start.isoformat(),
                "to": (start + timedelta(hours=hours)).isoformat(),
                "reason": "holidays",
            }
        ]
    }


def test_a_queued_deployment_whose_freeze_began_while_it_waited_is_held_again_not_started(
    cloud: Cloud,
) -> None:
    service = cloud.create_image_service("web-prod", tag="v1.0.0")
    cloud.apply_rules([image_rule("web-prod", service, frozen_from_now(cloud), semver="^1.0.0")])
    cloud.push_image("v1.1.0", DIGESTS[0])
    cloud.push_image("v1.2.0", DIGESTS[1])  # queued behind v1.1.0
    assert [str(d.status) for d in cloud.deployments(service)] == ["in_progress", "queued"]
    cloud.advance(6 * 60)  # the freeze begins
    cloud.finish_operations()
    by_version = {d.version: d for d in cloud.deployments(service)}
    assert str(by_version["v1.2.0"].status) == "held"
    assert by_version["v1.2.0"].held_by == ("freeze",)
    assert len(cloud.calls("UpdateService")) == 1
    cloud.advance(2 * 3600)  # it ends
    cloud.reconcile()
    assert str(only_version(cloud, service, "v1.2.0").status) == "in_progress"


def only_version(cloud: Cloud, service: str, version: str) -> Deployment:
    return next(d for d in cloud.deployments(service) if d.version == version)


def test_resume_asks_the_gates_again_a_deployment_held_by_the_pause_does_not_start_in_a_freeze(
    cloud: Cloud,
) -> None:
    from pushdeploy.operators import Operator

    service = cloud.create_image_service("web-prod", tag="v1.0.0")
    cloud.apply_rules([image_rule("web-prod", service, frozen_from_now(cloud), semver="^1.0.0")])
    operator = Operator(engine())
    operator.pause(service, reason="incident")
    cloud.push_image("v1.1.0", DIGESTS[0])  # its gates are open: held by the pause only
    assert only(cloud, service).held_by == ("pause",)
    cloud.advance(6 * 60)  # the freeze begins
    operator.resume(service)
    held = only(cloud, service)
    assert (str(held.status), held.held_by) == ("held", ("freeze",))
    assert not cloud.calls("UpdateService")
    cloud.advance(2 * 3600)
    cloud.reconcile()
    assert str(only(cloud, service).status) == "in_progress"


def test_deployments_show_says_what_the_gates_were_told(cloud: Cloud, prod: str) -> None:
    from pushdeploy.cli.deployments_cmd import render_details

    cloud.push_image("v1.1.0", DIGESTS[0])
    held = only(cloud, prod)
    engine().gates.decide(held.id, approved=True, actor="alice", reason="CAB-42")
    shown = render_details(only(cloud, prod), {})
    assert "approval    approved by alice at " in shown
    assert shown.rstrip().splitlines()[-1] != ""
    assert ": CAB-42" in shown


def test_a_call_retried_by_the_reconciler_is_not_made_inside_a_freeze_that_began_meanwhile(
    cloud: Cloud,
) -> None:
    service = cloud.create_image_service("web-prod", tag="v1.0.0")
    cloud.apply_rules([image_rule("web-prod", service, frozen_from_now(cloud), semver="^1.0.0")])
    from tests.integration.faults import failing, operation, server_error

    with failing(cloud.apprunner, operation("UpdateService"), lambda call: server_error(call.operation)):
        cloud.push_image("v1.1.0", DIGESTS[0])  # App Runner is unavailable: left starting
    assert str(only(cloud, service).status) == "starting"
    cloud.sim.calls.clear()
    cloud.advance(6 * 60)  # past the start grace, and the freeze has begun
    cloud.reconcile()
    held = only(cloud, service)
    assert (str(held.status), held.held_by) == ("held", ("freeze",))
    assert cloud.calls("UpdateService") == []  # not called again inside the freeze
    cloud.advance(2 * 3600)
    cloud.reconcile()
    assert str(only(cloud, service).status) == "in_progress"
