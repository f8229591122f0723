"""`make fuzz`: the whole fuzz suite, FUZZ_CASES webhook requests and FUZZ_CASES EventBridge events
(10,000 each by default) from FUZZ_SEED (9 by default; `random` for a new one). The last line is
`fuzz: cases=N unhandled=U deployed_from_invalid=D`, the first failing inputs (shortened) above it;
the exit status is 1 when U or D is not 0.

    FUZZ_SEED=7 FUZZ_CASES=20000 .venv/bin/python -m tests.fuzz.run
"""

from __future__ import annotations

import os
import secrets
import sys

from tests.fuzz.engine import progress_to_stderr, run_fuzz

DEFAULT_SEED = 9
DEFAULT_CASES = 10_000


def main() -> int:
    seed_text = os.environ.get("FUZZ_SEED") or str(DEFAULT_SEED)
    seed = secrets.randbelow(2**31) if seed_text == "random" else int(seed_text)
    cases = int(os.environ.get("FUZZ_CASES") or DEFAULT_CASES)
    progress_to_stderr(f"fuzz: seed={seed}, {cases} webhook requests and {cases} EventBridge events")
    report = run_fuzz(seed, cases, cases, progress=progress_to_stderr)
    for line in report.lines():
        print(line, flush=True)
    return 1 if report.unhandled or report.deployed_from_invalid else 0


if __name__ == "__main__":
    sys.exit(main())
