from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from pushdeploy import runtime
from tests.integration.harness import Cloud, build_cloud


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(variable, value)


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    with mock_aws():
        yield build_cloud(monkeypatch)
    monkeypatch.undo()  # restore the real client factory before clearing its cache
    runtime.reset()


@pytest.fixture
def services(cloud: Cloud) -> dict[str, str]:
    """Two image services: staging follows `latest`, production a semver range; App Runner calls and
    events made while setting up are forgotten."""
    staging = cloud.create_image_service("web-staging", tag="latest")
    prod = cloud.create_image_service("web-prod", tag="v1.0.0")
    cloud.apply_rules(
        [
            {"id": "web-staging", "service": staging, "image": {"repository": "web", "tag": "latest"}},
            {"id": "web-prod", "service": prod, "image": {"repository": "web", "semver": ">=1.2.0,<2.0.0"}},
        ]
    )
    cloud.sim.calls.clear()
    cloud.apprunner_events.clear()
    cloud.published()
    return {"staging": staging, "prod": prod}
