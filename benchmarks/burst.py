"""A burst of image pushes over many App Runner services, through the local cloud.

Starts its own local cloud (`pushdeploy local up`, App Runner operations of about a second), creates 20
image services with one semver rule each on its own ECR repository, pushes 10 versions per service
interleaved across the services as fast as the CLI's `push_image` puts them, waits until nothing is in
flight, checks the outcome (every service on its newest image, no lost change, never two operations at
once on a service, no duplicate deployment) and prints the figures. The end-to-end test
`tests/e2e/test_burst.py` runs the same scenario (`tests/e2e/burst.py`).

Run: `.venv/bin/python benchmarks/burst.py [--services N] [--versions N]`. Exit status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the end-to-end harness lives in tests/

from tests.e2e.burst import CLOUD_OPTIONS, SERVICES, VERSIONS, run_burst  # noqa: E402 - after the path
from tests.e2e.cloud import running_local_cloud  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=SERVICES, help=f"default {SERVICES}")
    parser.add_argument("--versions", type=int, default=VERSIONS, help=f"versions per service ({VERSIONS})")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pushdeploy-burst-") as tmp:
        print(f"starting the local cloud ({' '.join(CLOUD_OPTIONS)}) ...", flush=True)
        with running_local_cloud(Path(tmp) / "cloud", *CLOUD_OPTIONS) as cloud:
            print(f"ready in {cloud.startup_seconds:.1f} s; pushing ...", flush=True)
            report = run_burst(cloud, Path(tmp), args.services, args.versions)
    print(report.figures())
    for problem in report.problems:
        print(f"  problem: {problem}")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
