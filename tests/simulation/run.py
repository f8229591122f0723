"""`make soak`: run the simulation with SEED and STEPS from the environment (a random seed when SEED is
unset); the last line is `simulation: steps=N seed=S faults=F violations=V`; exit 1 when V > 0.

    SEED=7 STEPS=50000 .venv/bin/python -m tests.simulation.run

Optional: EPISODE_STEPS (steps per fresh cloud, default 200), SHRINK_SECONDS (time spent shrinking the
first failing schedule, default 120; 0 to skip).
"""

from __future__ import annotations

import os
import secrets
import sys

from tests.simulation.engine import run_simulation


def main() -> int:
    seed = int(os.environ["SEED"]) if os.environ.get("SEED") else secrets.randbelow(2**31)
    steps = int(os.environ.get("STEPS") or 10_000)
    episode_steps = int(os.environ.get("EPISODE_STEPS") or 200)
    shrink_seconds = float(os.environ.get("SHRINK_SECONDS") or 120)
    print(f"soak: seed={seed} steps={steps} (SEED={seed} STEPS={steps} reproduces this run)", flush=True)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    report = run_simulation(seed, steps, episode_steps, shrink_seconds, progress=progress)
    for line in report.lines():
        print(line, flush=True)
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
