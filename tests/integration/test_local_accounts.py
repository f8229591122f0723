"""A second account on the local cloud: a push there, made with that account's credentials, reaches
pushdeploy's functions through the forwarder as that account's event, when pushdeploy's bus admits it.

Against the local cloud's own moto server (in this process) with template.yaml provisioned, as `local up`
does, without the functions: what would invoke them is their invocation queue, read here.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from pushdeploy.cli.main import main
from pushdeploy.installation import Target, TargetError, load_local
from pushdeploy.local import accounts, moto_accounts, sending
from pushdeploy.local.intrinsics import StackIdentity
from pushdeploy.local.moto_server import MotoServer
from pushdeploy.local.provision import Clients, LocalStack, provision
from pushdeploy.local.state import write_state

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_A = "111122223333"  # the local cloud's, pushdeploy's
ACCOUNT_B = "222233334444"  # listed in SourceAccountIds
ACCOUNT_C = "777788889999"  # not listed
REGION = "us-east-1"
SERVICES = ("dynamodb", "ecr", "events", "sqs", "secretsmanager")


@dataclass
class Cloud:
    url: str
    stack: LocalStack
    state_dir: Path

    @property
    def target(self) -> Target:
        return load_local(str(self.state_dir))

    def client(self, service: str) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def delivered(self, function: str) -> list[dict[str, Any]]:
        """The events waiting in the function's invocation queue (taken off it)."""
        sqs = self.client("sqs")
        answer = sqs.receive_message(
            QueueUrl=self.stack.event_queues[function], MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        return [json.loads(message["Body"]) for message in answer.get("Messages", [])]

    def images(self, account: str, region: str = REGION) -> list[tuple[str, str]]:
        """(repository, tag) of every image in that account's ECR, read with its own credentials."""
        ecr = accounts.in_account(self.target, account, region).client("ecr")
        found: list[tuple[str, str]] = []
        for repository in ecr.describe_repositories()["repositories"]:
            name = repository["repositoryName"]
            for image in ecr.describe_images(repositoryName=name)["imageDetails"]:
                found.extend((name, tag) for tag in image.get("imageTags", []))
        return found


@pytest.fixture
def cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    """moto as `local up` runs it (accounts apart by credentials), template.yaml provisioned with
    SourceAccountIds=ACCOUNT_B, and the state file `--local` reads."""
    monkeypatch.delenv("MOTO_ACCOUNT_ID", raising=False)
    for owner, attribute, value in moto_accounts.patches(ACCOUNT_A):
        monkeypatch.setattr(owner, attribute, value)
    server = MotoServer()
    server.start()
    # moto's backends live in the process, not in the server: start from nothing.
    reset = urllib.request.Request(f"{server.url}/moto-api/reset", method="POST")  # noqa: S310 - loopback
    urllib.request.urlopen(reset).close()  # noqa: S310
    try:
        cloud = Cloud(server.url, _provision(server.url), tmp_path / "state")
        cloud.state_dir.mkdir()
        state = {
            "region": REGION,
            "account": ACCOUNT_A,
            "endpoints": dict.fromkeys(SERVICES, server.url),
            "outputs": cloud.stack.outputs,
        }
        write_state(cloud.state_dir, state)
        yield cloud
    finally:
        server.stop()


def _provision(url: str) -> LocalStack:
    def client(service: str) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            region_name=REGION,
            endpoint_url=url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    clients = Clients(client("dynamodb"), client("sqs"), client("secretsmanager"), client("events"))
    return provision(
        ROOT / "template.yaml",
        StackIdentity("pushdeploy", REGION, ACCOUNT_A),
        clients,
        function_url="http://127.0.0.1:9/",
        parameters={"SourceAccountIds": ACCOUNT_B},
    )


def test_an_image_pushed_in_another_account_reaches_the_push_function_as_that_accounts_event(
    cloud: Cloud,
) -> None:
    digest, forwarded = sending.push_image_in(cloud.target, ACCOUNT_B, REGION, "web", "v1.2.0")
    assert forwarded is not None
    assert forwarded.delivered
    (event,) = cloud.delivered("ImagePushedFunction")
    assert (event["account"], event["region"], event["source"]) == (ACCOUNT_B, REGION, "aws.ecr")
    assert (event["detail"]["repository-name"], event["detail"]["image-digest"]) == ("web", digest)
    # The image is B's: A's registry has no `web`.
    assert cloud.images(ACCOUNT_B) == [("web", "v1.2.0")]
    assert cloud.images(ACCOUNT_A) == []


def test_a_push_in_another_region_of_the_same_account_keeps_its_region(cloud: Cloud) -> None:
    _, forwarded = sending.push_image_in(cloud.target, ACCOUNT_A, "eu-west-1", "web", "v2")
    assert forwarded is not None
    assert forwarded.delivered
    (event,) = cloud.delivered("ImagePushedFunction")
    assert (event["account"], event["region"]) == (ACCOUNT_A, "eu-west-1")
    assert cloud.images(ACCOUNT_A, "eu-west-1") == [("web", "v2")]
    assert cloud.images(ACCOUNT_A) == []


def test_an_account_source_account_ids_does_not_list_is_refused_before_anything_is_pushed(
    cloud: Cloud,
) -> None:
    with pytest.raises(TargetError, match=f"--parameter SourceAccountIds={ACCOUNT_C}"):
        sending.push_image_in(cloud.target, ACCOUNT_C, REGION, "web", "v1")
    assert cloud.images(ACCOUNT_C) == []
    assert cloud.delivered("ImagePushedFunction") == []


def test_a_lost_event_leaves_the_image_in_the_registry_and_nothing_on_the_bus(cloud: Cloud) -> None:
    _, forwarded = sending.push_image_in(cloud.target, ACCOUNT_B, REGION, "web", "v3", lose_event=True)
    assert forwarded is None
    assert cloud.images(ACCOUNT_B) == [("web", "v3")]
    sending.put_image(cloud.target, "api", "v1")  # the same in the local cloud's own account
    assert cloud.images(ACCOUNT_A) == [("api", "v1")]
    assert cloud.delivered("ImagePushedFunction") == []


def test_a_codecommit_push_in_another_account_reaches_the_commit_function(cloud: Cloud) -> None:
    forwarded = sending.push_codecommit_in(cloud.target, ACCOUNT_B, "eu-west-1", "api", "main", "c" * 40)
    assert forwarded.delivered
    (event,) = cloud.delivered("CommitPushedFunction")
    assert (event["account"], event["region"]) == (ACCOUNT_B, "eu-west-1")
    assert (event["detail"]["repositoryName"], event["detail"]["commitId"]) == ("api", "c" * 40)


def test_the_stacks_bus_policy_names_the_source_accounts(cloud: Cloud) -> None:
    policy = json.loads(cloud.client("events").describe_event_bus(Name="default")["Policy"])
    (statement,) = policy["Statement"]
    assert (statement["Sid"], statement["Principal"]) == ("pushdeploy-source-accounts", {"AWS": [ACCOUNT_B]})


def test_a_local_cloud_that_pins_one_account_is_said_to(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOTO_ACCOUNT_ID", ACCOUNT_A)  # how the local cloud kept one account before
    with pytest.raises(TargetError, match="keeps one account only"):
        accounts.in_account(cloud.target, ACCOUNT_B, REGION)


def run(capsys: pytest.CaptureFixture[str], cloud: Cloud, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(["--local", "--state-dir", str(cloud.state_dir), *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_push_image_account_says_where_it_pushed_and_what_became_of_the_event(
    cloud: Cloud, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, cloud, "push-image", "web:v1.2.0", "--account", ACCOUNT_B, "--json")
    assert (status, err) == (0, "")
    shown = json.loads(out)
    assert (shown["account"], shown["region"], shown["event"], shown["watched_by"]) == (
        ACCOUNT_B,
        REGION,
        "forwarded",
        [],
    )
    (event,) = cloud.delivered("ImagePushedFunction")
    assert (event["account"], event["detail"]["image-digest"]) == (ACCOUNT_B, shown["digest"])


def test_push_image_account_refuses_an_account_the_bus_does_not_admit_in_one_line(
    cloud: Cloud, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, cloud, "push-image", "web:v1", "--account", ACCOUNT_C)
    assert (status, out) == (1, "")
    assert err == (
        f"error: pushdeploy's bus refuses events from account {ACCOUNT_C}: its policy does not admit the "
        f"account (SourceAccountIds does not list it); start local up with --parameter "
        f"SourceAccountIds={ACCOUNT_C}\n"
    )


def test_push_image_lose_event_says_the_event_was_lost_on_purpose(
    cloud: Cloud, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, cloud, "push-image", "web:v1")  # a watched-nowhere note at most
    assert status == 0
    cloud.delivered("ImagePushedFunction")  # the ordinary push's event, taken off
    status, out, err = run(capsys, cloud, "push-image", "web:v2", "--lose-event")
    assert status == 0
    assert out.startswith("sha256:")
    assert err.splitlines()[0] == (
        "note: the ECR Image Action event was not sent (--lose-event): only a sweep can find this push"
    )
    status, out, _ = run(capsys, cloud, "push-image", "web:v3", "--lose-event", "--json")
    assert (status, json.loads(out)["event"]) == (0, "lost")
    assert cloud.delivered("ImagePushedFunction") == []
    assert sorted(cloud.images(ACCOUNT_A)) == [("web", "v1"), ("web", "v2"), ("web", "v3")]


def test_push_commit_codecommit_account_is_forwarded(
    cloud: Cloud, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(
        capsys, cloud, "push-commit", "codecommit", "api", "main", "--account", ACCOUNT_B, "--json"
    )
    assert (status, err) == (0, "")
    shown = json.loads(out)
    assert (shown["account"], shown["event"]) == (ACCOUNT_B, "forwarded")
    (event,) = cloud.delivered("CommitPushedFunction")
    assert (event["account"], event["detail"]["commitId"]) == (ACCOUNT_B, shown["commit"])
