"""The webhook through its real handler: a Function URL request (payload format 2.0) in, an HTTP answer out,
with moto holding Secrets Manager, DynamoDB and EventBridge. Every case checks the answer AND what was
recorded (ledger, idempotency table) and forwarded (EventBridge, source pushdeploy.webhook)."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import pytest

from pushdeploy import runtime
from pushdeploy.domain.change_ids import signed_change_id
from pushdeploy.sources.signatures import sign
from pushdeploy.sources.webhooks import parse_webhook
from pushdeploy.webhook import MAX_BODY_BYTES, forget_container
from tests.conftest import PAYLOADS
from tests.integration.harness import TABLES, WEBHOOK_SECRETS, Cloud

GITHUB_REPO = "Codertocat/Hello-World"  # github-push.body.json
BITBUCKET_REPO = "team_name/repo_name"  # bitbucket-push.body.json
GITHUB_PUSH = (PAYLOADS / "github-push.body.json").read_bytes()
BITBUCKET_PUSH = (PAYLOADS / "bitbucket-push.body.json").read_bytes()
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"


# --- requests ------------------------------------------------------------------------------------------


def signed_ids(body: bytes, headers: dict[str, str]) -> list[str]:
    """The change ids of a delivery: derived from what was signed, not from the delivery id."""
    return [signed_change_id(change) for change in parse_webhook(body, headers).changes]


def github_headers(
    body: bytes,
    secret: str | None = WEBHOOK_SECRETS["github"],
    event: str = "push",
    delivery: str = DELIVERY,
    content_type: str = "application/json",
) -> dict[str, str]:
    headers = {
        "Content-Type": content_type,
        "User-Agent": "GitHub-Hookshot/044aadd",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Hook-ID": "292430182",
    }
    if secret is not None:
        headers["X-Hub-Signature-256"] = sign(body, secret)
    return headers


def bitbucket_headers(body: bytes, secret: str = WEBHOOK_SECRETS["bitbucket"]) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "Bitbucket-Webhooks/2.0",
        "X-Event-Key": "repo:push",
        "X-Hook-UUID": "cb3a8e4a-5a4c-4a9e-9d0b-5f1e4f6a7b8c",
        "X-Request-UUID": "f6a2b1c0-1111-4a2b-8c3d-222233334444",
        "X-Attempt-Number": "1",
        "X-Hub-Signature": sign(body, secret),
    }


def with_branches(payload: bytes, changes: list[dict[str, Any] | None]) -> bytes:
    """The Bitbucket fixture with its one branch change replaced by these (None: a deletion)."""
    document = json.loads(payload)
    template = document["push"]["changes"][0]
    built = []
    for change in changes:
        entry = copy.deepcopy(template)
        if change is None:
            entry["new"] = None
        else:
            entry["new"].update(type=change["type"], name=change["name"])
            entry["new"]["target"]["hash"] = change["hash"]
        built.append(entry)
    document["push"]["changes"] = built
    return json.dumps(document).encode()


def github_branch_deletion() -> bytes:
    document = json.loads(GITHUB_PUSH)
    document.update(ref="refs/heads/feature", after="0" * 40, deleted=True, created=False)
    return json.dumps(document).encode()


def status(answer: dict[str, Any]) -> int:
    return int(answer["statusCode"])


def body_of(answer: dict[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(answer["body"])
    return parsed


# --- what was kept -------------------------------------------------------------------------------------


def items(cloud: Cloud, table: str) -> list[dict[str, Any]]:
    return list(cloud.dynamodb.scan(TableName=TABLES[table])["Items"])


def assert_nothing_kept(cloud: Cloud) -> None:
    """A refused or ignored delivery leaves no trace: nothing forwarded, recorded or remembered."""
    assert cloud.forwarded() == []
    assert items(cloud, "LedgerTable") == []
    assert items(cloud, "IdempotencyTable") == []


def details(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for event in events:
        assert (event["source"], event["detail-type"]) == ("pushdeploy.webhook", "Change Pushed")
    return [event["detail"] for event in events]


# --- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture
def code_services(cloud: Cloud) -> dict[str, str]:
    """Code-based App Runner services, with rules watching the fixtures' repositories."""
    services = {
        "github": cloud.create_code_service("hello-world", f"https://github.com/{GITHUB_REPO}", "master"),
        "bitbucket": cloud.create_code_service(
            "team-repo", f"https://bitbucket.org/{BITBUCKET_REPO}", "main"
        ),
    }
    cloud.apply_rules(
        [
            {
                "id": "hello-world",
                "service": services["github"],
                "code": {"provider": "github", "repository": GITHUB_REPO, "branch": "master"},
            },
            {
                "id": "team-repo",
                "service": services["bitbucket"],
                "code": {"provider": "bitbucket", "repository": BITBUCKET_REPO, "branch_glob": "*"},
            },
        ]
    )
    cloud.sim.calls.clear()
    return services


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Everything the log records carry (messages and extra fields), as one text."""
    return "\n".join(str(vars(record)) for record in caplog.records)


# --- accepted ------------------------------------------------------------------------------------------


def test_a_signed_github_push_is_forwarded_and_answered_202(
    cloud: Cloud, code_services: dict[str, str]
) -> None:
    answer = cloud.webhook("/github", GITHUB_PUSH, github_headers(GITHUB_PUSH))

    assert status(answer) == 202
    assert answer["headers"]["Content-Type"] == "application/json"
    (change_id,) = signed_ids(GITHUB_PUSH, github_headers(GITHUB_PUSH))
    assert body_of(answer) == {"message": "forwarded 1 of 1 changes", "changes": [change_id], "forwarded": 1}
    (detail,) = details(cloud.forwarded())
    assert detail == {
        "change": {
            "kind": "commit",
            "source": "github",
            "account": None,
            "region": None,
            "repository": GITHUB_REPO,
            "tag": None,
            "digest": None,
            "branch": "master",
            "commit": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        },
        "delivery_id": DELIVERY,
        "provider": "github",
        "position": 0,
        # What orders this push against others: GitHub's push time and the commit it moved from
        # (`before` is all zeros: the branch was created).
        "pushed_at": "2019-05-15T15:20:57+00:00",
        "previous_commit": None,
    }
    # The webhook records nothing itself for a watched push: the commit function decides and records.
    assert items(cloud, "LedgerTable") == []
    assert cloud.calls("StartDeployment") == []  # nor does it wait on App Runner


def test_a_json_content_type_with_a_charset_is_accepted(cloud: Cloud, code_services: dict[str, str]) -> None:
    headers = github_headers(GITHUB_PUSH, content_type="application/json; charset=utf-8")
    assert status(cloud.webhook("/github", GITHUB_PUSH, headers)) == 202
    assert len(cloud.forwarded()) == 1


def test_a_base64_encoded_body_is_decoded_before_the_signature_is_checked(
    cloud: Cloud, code_services: dict[str, str]
) -> None:
    answer = cloud.webhook("/github", GITHUB_PUSH, github_headers(GITHUB_PUSH), base64_encoded=True)

    assert status(answer) == 202
    (detail,) = details(cloud.forwarded())
    assert detail["change"]["commit"] == "6113728f27ae82c7b1a177c8d03f9e96e0adf246"


def test_a_bitbucket_push_forwards_each_branch_change(cloud: Cloud, code_services: dict[str, str]) -> None:
    payload = with_branches(
        BITBUCKET_PUSH,
        [
            {"type": "branch", "name": "main", "hash": "a" * 40},
            {"type": "tag", "name": "v1.0.0", "hash": "b" * 40},  # a tag: not deployable
            None,  # a deleted branch: not deployable
            {"type": "branch", "name": "release/1.2", "hash": "c" * 40},
        ],
    )
    answer = cloud.webhook("/bitbucket", payload, bitbucket_headers(payload))

    assert status(answer) == 202
    assert body_of(answer)["changes"] == signed_ids(payload, bitbucket_headers(payload))
    forwarded = sorted(details(cloud.forwarded()), key=lambda detail: int(detail["position"]))
    assert [(d["change"]["branch"], d["change"]["commit"], d["position"]) for d in forwarded] == [
        ("main", "a" * 40, 0),
        ("release/1.2", "c" * 40, 1),
    ]
    assert {(d["provider"], d["delivery_id"], d["change"]["repository"]) for d in forwarded} == {
        ("bitbucket", "f6a2b1c0-1111-4a2b-8c3d-222233334444", BITBUCKET_REPO)
    }


def test_the_real_bitbucket_body_is_forwarded(cloud: Cloud, code_services: dict[str, str]) -> None:
    answer = cloud.webhook("/bitbucket", BITBUCKET_PUSH, bitbucket_headers(BITBUCKET_PUSH))

    assert status(answer) == 202
    (detail,) = details(cloud.forwarded())
    assert (detail["change"]["branch"], detail["change"]["commit"]) == (
        "name-of-branch",
        "709d658dc5b6d6afcd46049c2f332ee3f515a67d",
    )


def test_a_body_of_exactly_one_mebibyte_is_accepted(cloud: Cloud, code_services: dict[str, str]) -> None:
    payload = GITHUB_PUSH + b" " * (MAX_BODY_BYTES - len(GITHUB_PUSH))  # JSON allows trailing blanks
    assert len(payload) == MAX_BODY_BYTES
    assert status(cloud.webhook("/github", payload, github_headers(payload))) == 202
    assert len(cloud.forwarded()) == 1


# --- a repository no rule names --------------------------------------------------------------------------


def test_a_repository_no_rule_names_is_recorded_as_no_rule(cloud: Cloud) -> None:
    answer = cloud.webhook("/github", GITHUB_PUSH, github_headers(GITHUB_PUSH))

    (change_id,) = signed_ids(GITHUB_PUSH, github_headers(GITHUB_PUSH))
    note = f"no rule watches github {GITHUB_REPO}"
    assert status(answer) == 202
    assert body_of(answer) == {"message": note, "changes": [change_id], "forwarded": 0}
    assert cloud.forwarded() == []
    recorded = cloud.ledger.change(change_id)
    assert recorded is not None
    assert recorded["note"] == note
    assert recorded["decisions"] == []
    assert recorded["event_id"] == DELIVERY
    assert recorded["change"]["repository"] == GITHUB_REPO
    # Expires like any change that deployed nothing (90 days).
    expected = (cloud.now() + timedelta(days=90)).timestamp()
    assert abs(int(recorded["expires_at"]) - expected) < 60


def test_after_a_rule_is_added_redelivering_a_no_rule_push_forwards_it(cloud: Cloud) -> None:
    """'No rule' is not remembered as a replay: GitHub's Redeliver button is how a user retries."""
    assert body_of(cloud.webhook("/github", GITHUB_PUSH, github_headers(GITHUB_PUSH)))["forwarded"] == 0
    assert items(cloud, "IdempotencyTable") == []

    service = cloud.create_code_service("hello-world", f"https://github.com/{GITHUB_REPO}", "master")
    rule = {"provider": "github", "repository": GITHUB_REPO, "branch": "master"}
    cloud.apply_rules([{"id": "hello-world", "service": service, "code": rule}])
    again = cloud.webhook("/github", GITHUB_PUSH, github_headers(GITHUB_PUSH))

    assert body_of(again) == {
        "message": "forwarded 1 of 1 changes",
        "changes": signed_ids(GITHUB_PUSH, github_headers(GITHUB_PUSH)),
        "forwarded": 1,
    }
    (event,) = cloud.forwarded()
    cloud.invoke("commit_pushed", event)
    assert cloud.statuses(service) == ["in_progress"]
    # The same change id: the controller's record is what the change shows now; the 'no rule' note
    # stays as it was written (records are never overwritten).
    recorded = cloud.ledger.change(signed_ids(GITHUB_PUSH, github_headers(GITHUB_PUSH))[0])
    assert recorded is not None
    assert len(recorded["decisions"]) == 1


def test_a_rule_applied_while_the_webhook_remembers_no_rule_forwards_the_next_push(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The webhook's container remembers which repositories rules watch, but never a 'no' that a rule
    applied since has made wrong: that push would be recorded as watched by nobody, and never deployed."""
    monkeypatch.setenv("RULES_CACHE_SECONDS", "86400")
    forget_container()
    assert body_of(cloud.webhook("/github", GITHUB_PUSH, github_headers(GITHUB_PUSH)))["forwarded"] == 0

    service = cloud.create_code_service("hello-world", f"https://github.com/{GITHUB_REPO}", "master")
    rule = {"provider": "github", "repository": GITHUB_REPO, "branch": "master"}
    cloud.apply_rules([{"id": "hello-world", "service": service, "code": rule}])
    again = cloud.webhook("/github", GITHUB_PUSH, github_headers(GITHUB_PUSH))

    assert body_of(again)["forwarded"] == 1


# --- replays -------------------------------------------------------------------------------------------


def test_a_redelivery_forwards_nothing_new_and_deploys_once(
    cloud: Cloud, code_services: dict[str, str]
) -> None:
    first = cloud.webhook("/github", GITHUB_PUSH, github_headers(GITHUB_PUSH))
    again = cloud.webhook("/github", GITHUB_PUSH, github_headers(GITHUB_PUSH))

    assert (status(first), status(again)) == (202, 202)
    assert body_of(again) == {**body_of(first), "replayed": True}
    (event,) = cloud.forwarded()
    cloud.invoke("commit_pushed", event)
    # Even a second forward of the same delivery (another EventBridge event id) is the same change.
    cloud.invoke("commit_pushed", {**event, "id": "another-eventbridge-id"})
    assert len(cloud.calls("StartDeployment")) == 1
    assert len(cloud.deployments(code_services["github"])) == 1


def test_a_new_delivery_of_the_same_commit_is_not_a_replay(
    cloud: Cloud, code_services: dict[str, str]
) -> None:
    cloud.webhook("/github", GITHUB_PUSH, github_headers(GITHUB_PUSH, delivery="delivery-1"))
    cloud.webhook("/github", GITHUB_PUSH, github_headers(GITHUB_PUSH, delivery="delivery-2"))
    assert len(cloud.forwarded()) == 2  # the controller then sees the same commit live or in flight


# --- end to end ----------------------------------------------------------------------------------------


def test_end_to_end_a_signed_push_deploys_the_code_service(
    cloud: Cloud, code_services: dict[str, str]
) -> None:
    answer = cloud.webhook("/github", GITHUB_PUSH, github_headers(GITHUB_PUSH))
    assert status(answer) == 202
    (event,) = cloud.forwarded()

    result = cloud.invoke("commit_pushed", event)

    service = code_services["github"]
    assert result["changes"] == body_of(answer)["changes"]
    assert cloud.calls("StartDeployment") == [{"ServiceArn": service}]
    (deployment,) = cloud.deployments(service)
    assert (deployment.status, deployment.branch, deployment.source) == ("in_progress", "master", "github")
    assert deployment.commit == "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
    cloud.finish_operations()
    assert cloud.statuses(service) == ["succeeded"]
    change = cloud.ledger.change(deployment.change_id)
    assert change is not None
    assert change["event_id"] == DELIVERY


# --- ignored -------------------------------------------------------------------------------------------


def test_a_ping_is_answered_200(cloud: Cloud, code_services: dict[str, str]) -> None:
    ping = (PAYLOADS / "github-ping.body.json").read_bytes()
    answer = cloud.webhook("/github", ping, github_headers(ping, event="ping"))

    assert (status(answer), body_of(answer)) == (200, {"message": "pong"})
    assert_nothing_kept(cloud)


def test_a_tag_deletion_is_ignored(cloud: Cloud, code_services: dict[str, str]) -> None:
    payload = (PAYLOADS / "github-push-delete-tag.body.json").read_bytes()
    answer = cloud.webhook("/github", payload, github_headers(payload))

    assert status(answer) == 202
    assert body_of(answer) == {"message": "ignored", "ignored": "GitHub push deleted refs/tags/simple-tag"}
    assert_nothing_kept(cloud)


def test_a_branch_deletion_is_ignored(cloud: Cloud, code_services: dict[str, str]) -> None:
    payload = github_branch_deletion()
    answer = cloud.webhook("/github", payload, github_headers(payload))

    assert status(answer) == 202
    assert body_of(answer)["ignored"] == "GitHub push deleted refs/heads/feature"
    assert_nothing_kept(cloud)


def test_another_event_type_is_ignored(cloud: Cloud, code_services: dict[str, str]) -> None:
    payload = b'{"action": "opened"}'
    answer = cloud.webhook("/github", payload, github_headers(payload, event="issues"))

    assert status(answer) == 202
    assert body_of(answer)["ignored"] == "GitHub issues event is not a push"
    assert_nothing_kept(cloud)


def test_a_bitbucket_push_of_only_tags_and_deletions_is_ignored(
    cloud: Cloud, code_services: dict[str, str]
) -> None:
    payload = with_branches(BITBUCKET_PUSH, [{"type": "tag", "name": "v2", "hash": "d" * 40}, None])
    answer = cloud.webhook("/bitbucket", payload, bitbucket_headers(payload))

    assert status(answer) == 202
    assert "updated no branch" in body_of(answer)["ignored"]
    assert_nothing_kept(cloud)


# --- refused: the signature ----------------------------------------------------------------------------

UNSIGNED = {"message": "invalid signature"}


def test_a_tampered_body_is_refused_401(
    cloud: Cloud, code_services: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    headers = github_headers(GITHUB_PUSH)
    tampered = GITHUB_PUSH.replace(b"6113728f27ae82c7b1a177c8d03f9e96e0adf246", b"f" * 40)
    answer = cloud.webhook("/github", tampered, headers)

    assert (status(answer), body_of(answer)) == (401, UNSIGNED)
    assert_nothing_kept(cloud)
    output = logged(caplog)
    assert "delivery refused" in output
    assert "signature invalid" in output
    # The log names the delivery, never the secret, the signature or the body.
    assert DELIVERY in output
    for secret in WEBHOOK_SECRETS.values():
        assert secret not in output
    assert headers["X-Hub-Signature-256"].removeprefix("sha256=") not in output
    assert "Codertocat" not in output


def test_a_body_signed_with_another_secret_is_refused_401(
    cloud: Cloud, code_services: dict[str, str]
) -> None:
    answer = cloud.webhook("/github", GITHUB_PUSH, github_headers(GITHUB_PUSH, secret="not-our-secret"))
    assert (status(answer), body_of(answer)) == (401, UNSIGNED)
    assert_nothing_kept(cloud)


def test_the_other_providers_secret_does_not_sign_github_deliveries(
    cloud: Cloud, code_services: dict[str, str]
) -> None:
    headers = github_headers(GITHUB_PUSH, secret=WEBHOOK_SECRETS["bitbucket"])
    assert status(cloud.webhook("/github", GITHUB_PUSH, headers)) == 401
    assert_nothing_kept(cloud)


def test_a_delivery_without_signature_is_refused_401(
    cloud: Cloud, code_services: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    answer = cloud.webhook("/github", GITHUB_PUSH, github_headers(GITHUB_PUSH, secret=None))

    assert (status(answer), body_of(answer)) == (401, UNSIGNED)
    assert "signature missing" in logged(caplog)
    assert_nothing_kept(cloud)


def test_githubs_legacy_sha1_signature_alone_is_refused_401(
    cloud: Cloud, code_services: dict[str, str]
) -> None:
    headers = github_headers(GITHUB_PUSH, secret=None)
    secret = WEBHOOK_SECRETS["github"].encode()
    headers["X-Hub-Signature"] = "sha1=" + hmac.new(secret, GITHUB_PUSH, hashlib.sha1).hexdigest()

    answer = cloud.webhook("/github", GITHUB_PUSH, headers)
    assert (status(answer), body_of(answer)) == (401, UNSIGNED)
    assert_nothing_kept(cloud)


def test_a_bitbucket_body_signed_with_another_secret_is_refused_401(
    cloud: Cloud, code_services: dict[str, str]
) -> None:
    answer = cloud.webhook("/bitbucket", BITBUCKET_PUSH, bitbucket_headers(BITBUCKET_PUSH, secret="guess"))
    assert (status(answer), body_of(answer)) == (401, UNSIGNED)
    assert_nothing_kept(cloud)


def test_an_unsigned_replay_of_a_known_delivery_id_is_refused(
    cloud: Cloud, code_services: dict[str, str]
) -> None:
    """The idempotency table is consulted only after the signature: a forger cannot read old answers."""
    assert status(cloud.webhook("/github", GITHUB_PUSH, github_headers(GITHUB_PUSH))) == 202
    cloud.forwarded()
    answer = cloud.webhook("/github", GITHUB_PUSH, github_headers(GITHUB_PUSH, secret="forged"))
    assert (status(answer), body_of(answer)) == (401, UNSIGNED)


def test_githubs_documented_test_vector_passes_the_signature_check(cloud: Cloud) -> None:
    """Secret `It's a Secret to Everybody`, body `Hello, World!`: the documented signature is accepted
    (the body then fails as JSON: 400, not 401); one hex digit off is refused."""
    cloud.rotate_webhook_secret("github", "It's a Secret to Everybody")
    documented = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    headers = {**github_headers(b"", secret=None), "X-Hub-Signature-256": documented}

    accepted = cloud.webhook("/github", b"Hello, World!", headers)
    assert (status(accepted), body_of(accepted)) == (400, {"message": "the webhook body is not JSON"})

    headers["X-Hub-Signature-256"] = documented[:-1] + "f"
    assert status(cloud.webhook("/github", b"Hello, World!", headers)) == 401
    assert_nothing_kept(cloud)


# --- rotation ------------------------------------------------------------------------------------------


def test_during_a_rotation_the_previous_and_the_new_secret_are_both_accepted(
    cloud: Cloud, code_services: dict[str, str]
) -> None:
    old = WEBHOOK_SECRETS["github"]
    # A warm container: it has read (and cached) the secret before the rotation.
    assert status(cloud.webhook("/github", GITHUB_PUSH, github_headers(GITHUB_PUSH, delivery="d-0"))) == 202

    cloud.rotate_webhook_secret("github", "NewGitHubSecret0123456789abcdefghijklmnop")

    # GitHub still signs with the old secret until its settings are updated: AWSPREVIOUS.
    headers = github_headers(GITHUB_PUSH, secret=old, delivery="d-1")
    assert status(cloud.webhook("/github", GITHUB_PUSH, headers)) == 202
    # The settings updated: the new secret is accepted at once, cache or not.
    new = "NewGitHubSecret0123456789abcdefghijklmnop"
    headers = github_headers(GITHUB_PUSH, secret=new, delivery="d-2")
    assert status(cloud.webhook("/github", GITHUB_PUSH, headers)) == 202
    assert len(cloud.forwarded()) == 3

    # A second rotation retires the first secret.
    cloud.rotate_webhook_secret("github", "ThirdGitHubSecret0123456789abcdefghijklm")
    forget_container()  # a fresh container
    headers = github_headers(GITHUB_PUSH, secret=old, delivery="d-3")
    assert status(cloud.webhook("/github", GITHUB_PUSH, headers)) == 401
    assert cloud.forwarded() == []


# --- refused: before the signature ---------------------------------------------------------------------


def test_a_body_over_one_mebibyte_is_refused_413_before_anything_else(
    cloud: Cloud, code_services: dict[str, str]
) -> None:
    payload = GITHUB_PUSH + b" " * (MAX_BODY_BYTES + 1 - len(GITHUB_PUSH))
    answer = cloud.webhook("/github", payload, github_headers(payload))  # even correctly signed

    assert status(answer) == 413
    assert_nothing_kept(cloud)


def test_the_size_limit_applies_to_the_decoded_body(cloud: Cloud, code_services: dict[str, str]) -> None:
    # Base64 makes 786,432 bytes about 1 MiB of text: under the limit once decoded.
    payload = GITHUB_PUSH + b" " * (786_432 - len(GITHUB_PUSH))
    answer = cloud.webhook("/github", payload, github_headers(payload), base64_encoded=True)
    assert status(answer) == 202

    payload = GITHUB_PUSH + b" " * (MAX_BODY_BYTES + 1 - len(GITHUB_PUSH))
    answer = cloud.webhook("/github", payload, github_headers(payload), base64_encoded=True)
    assert status(answer) == 413


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_another_method_is_refused_405(cloud: Cloud, code_services: dict[str, str], method: str) -> None:
    answer = cloud.webhook("/github", GITHUB_PUSH, github_headers(GITHUB_PUSH), method=method)

    assert status(answer) == 405
    assert answer["headers"]["Allow"] == "POST"
    assert_nothing_kept(cloud)


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "application/jsonx", ""]
)
def test_another_content_type_is_refused_415(
    cloud: Cloud, code_services: dict[str, str], content_type: str
) -> None:
    headers = github_headers(GITHUB_PUSH, content_type=content_type)
    answer = cloud.webhook("/github", GITHUB_PUSH, headers)

    assert status(answer) == 415
    assert "application/json" in body_of(answer)["message"]
    assert_nothing_kept(cloud)


def test_an_unknown_path_is_404(cloud: Cloud, code_services: dict[str, str]) -> None:
    for path in ["/", "/gitlab", "/github/extra"]:
        assert status(cloud.webhook(path, GITHUB_PUSH, github_headers(GITHUB_PUSH))) == 404
    assert_nothing_kept(cloud)


def test_a_github_delivery_at_the_bitbucket_path_is_refused_400(
    cloud: Cloud, code_services: dict[str, str]
) -> None:
    answer = cloud.webhook("/bitbucket", GITHUB_PUSH, github_headers(GITHUB_PUSH))

    assert status(answer) == 400
    assert body_of(answer) == {"message": "a github delivery was sent to /bitbucket: use /github"}
    assert status(cloud.webhook("/github", BITBUCKET_PUSH, bitbucket_headers(BITBUCKET_PUSH))) == 400
    assert_nothing_kept(cloud)


def test_a_push_without_a_delivery_id_is_refused_400(cloud: Cloud, code_services: dict[str, str]) -> None:
    headers = github_headers(GITHUB_PUSH)
    del headers["X-GitHub-Delivery"]
    answer = cloud.webhook("/github", GITHUB_PUSH, headers)

    assert status(answer) == 400
    assert "x-github-delivery" in body_of(answer)["message"]
    assert_nothing_kept(cloud)


def test_invalid_base64_is_refused_400(cloud: Cloud, code_services: dict[str, str]) -> None:
    event_headers = github_headers(GITHUB_PUSH)
    from tests.integration.harness import function_url_event

    event = function_url_event("/github", GITHUB_PUSH, event_headers, base64_encoded=True)
    event["body"] = "not base64!"
    assert status(cloud.invoke("webhook", event)) == 400
    assert_nothing_kept(cloud)


# --- failures: the sender should deliver again ----------------------------------------------------------


def test_when_eventbridge_refuses_the_answer_is_500_and_a_redelivery_forwards(
    cloud: Cloud, code_services: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    events = runtime.client("events")

    def refuse(**request: Any) -> dict[str, Any]:
        entries = [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again"} for _ in request["Entries"]]
        return {"FailedEntryCount": len(entries), "Entries": entries}

    monkeypatch.setattr(events, "put_events", refuse)
    answer = cloud.webhook("/github", GITHUB_PUSH, github_headers(GITHUB_PUSH))
    assert (status(answer), body_of(answer)) == (
        500,
        {"message": "could not hand the changes over: deliver again"},
    )
    assert items(cloud, "IdempotencyTable") == []  # not remembered: the redelivery is processed

    monkeypatch.undo()
    assert status(cloud.webhook("/github", GITHUB_PUSH, github_headers(GITHUB_PUSH))) == 202
    assert len(cloud.forwarded()) == 1


def test_an_unreadable_secret_is_a_500_not_a_401(
    cloud: Cloud, code_services: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "GITHUB_WEBHOOK_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:111122223333:secret:gone"
    )
    forget_container()
    answer = cloud.webhook("/github", GITHUB_PUSH, github_headers(GITHUB_PUSH))

    assert (status(answer), body_of(answer)) == (500, {"message": "internal error: deliver again later"})
    assert_nothing_kept(cloud)
