"""A burst of 200 image pushes over 20 App Runner services, end to end on a local cloud of its own (the
scenario and its checks: `pushdeploy.local.burst`; `benchmarks/burst.py` runs the same, standalone)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pushdeploy.local.burst import CLOUD_OPTIONS, SERVICES, VERSIONS, run_burst
from tests.e2e.cloud import LocalCloud, running_local_cloud

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    with running_local_cloud(tmp_path_factory.mktemp("burst-cloud"), *CLOUD_OPTIONS) as running:
        yield running


def test_a_burst_ends_with_every_service_on_its_newest_image(
    cloud: LocalCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run_burst(cloud.target)
    with capsys.disabled():
        print("\n" + report.figures())
    assert (report.services, report.pushes) == (SERVICES, SERVICES * VERSIONS)
    assert not report.problems, "\n".join(report.problems)
    assert (report.lost, report.duplicated) == (0, 0)
    assert report.settle_seconds is not None
    # Every service deployed at least its first and its newest version.
    assert report.started >= SERVICES
