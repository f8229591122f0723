"""The demo's scenarios end to end: `make demo`'s program, run as a user runs it, must pass."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.cloud import processes_mentioning, running_cloud, wait_until

pytestmark = pytest.mark.e2e

DEMO_TIMEOUT_SECONDS = 150
EXPECTED_SUMMARY = "PASS 13/13 steps, 16 deployments (1 rejected, 1 rolled_back, 11 succeeded, 3 superseded)"


def test_the_demo_passes(tmp_path: Path) -> None:
    # The demo starts a local cloud of its own: none of the tests' may run meanwhile.
    assert running_cloud() is None, "a test's local cloud is still running"
    state_dir = tmp_path / "demo"
    began = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pushdeploy.local.demo", "--state-dir", str(state_dir)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=DEMO_TIMEOUT_SECONDS,
            check=False,
        )
    finally:
        # Its workers run from spec files under the state directory: none may outlive it (on a
        # timeout they notice their parent is gone and exit on their own).
        wait_until(lambda: not processes_mentioning(f"{state_dir}/"), timeout=15)
    took = time.monotonic() - began
    shown = f"exit {done.returncode} after {took:.0f} s\n{done.stdout}\n{done.stderr}"
    assert done.returncode == 0, shown
    lines = done.stdout.splitlines()
    # The same summary on every run: the pushes are made one at a time, so the ledger ends the same.
    assert EXPECTED_SUMMARY in lines, shown
    assert "What to try next" in done.stdout.split(EXPECTED_SUMMARY)[1], shown
