"""The local cloud for end-to-end tests (see `tests.e2e.cloud`): one per test module that asks for it,
taken down when the module's tests are done, so two never run at once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.cloud import LocalCloud, running_local_cloud

# What most end-to-end tests want: operations of a second, a reconciler every two seconds.
DEFAULT_OPTIONS = ("--operation-seconds", "1", "--reconcile-seconds", "2")


@pytest.fixture(scope="module")
def local_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    with running_local_cloud(tmp_path_factory.mktemp("local-cloud"), *DEFAULT_OPTIONS) as cloud:
        yield cloud
