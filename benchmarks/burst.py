"""A burst of image pushes over many App Runner services, through the local cloud.

Starts its own local cloud (`pushdeploy local up` as a subprocess, App Runner operations of 6 s), creates
the image services with one semver rule each on its own ECR repository, pushes the versions of each
service back to back, several services at a time, waits until nothing is in flight, checks the outcome
(every service on its newest image, no lost change, never two operations at once on a service, no
duplicate deployment), samples the resident memory of `local up` and all its children throughout, and
stops it with SIGTERM. The scenario and its checks are `pushdeploy.local.burst`, which the end-to-end
test `tests/e2e/test_burst.py` runs too.

Run: `.venv/bin/python benchmarks/burst.py [--services N] [--versions N]`. Exit status 1 if a check fails.
`measure_burst()` returns the figures for `make bench`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from pushdeploy.installation import load_local
from pushdeploy.local.burst import CLOUD_OPTIONS, SERVICES, VERSIONS, BurstReport, run_burst

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 10.0
SAMPLE_SECONDS = 0.25


def measure_burst(services: int = 50, versions: int = 20) -> dict[str, Any]:
    """Run the burst on a local cloud of its own: the figures `make bench` reports."""
    with tempfile.TemporaryDirectory(prefix="pushdeploy-burst-") as tmp:
        state_dir = Path(tmp) / "cloud"
        state_dir.mkdir()
        process = _start(state_dir)
        sampler = RssSampler(process.pid)
        problems: list[str] = []
        report: BurstReport | None = None
        try:
            _await_ready(process, state_dir)
            sampler.start()
            report = run_burst(load_local(str(state_dir)), services, versions)
            problems += report.problems
        finally:
            stopped, stop_problems = _stop(process, state_dir, sampler)
            problems += stop_problems
            sampler.stop()
    return _figures(report, services, sampler.peak_mb, stopped, problems)


def _figures(
    report: BurstReport | None, services: int, peak_mb: float, stopped: bool, problems: list[str]
) -> dict[str, Any]:
    return {
        "pushes": report.pushes if report else 0,
        "services": report.services if report else services,
        "pushes_per_s": round(report.pushes_per_second, 1) if report else 0.0,
        "settle_s": None
        if report is None or report.settle_seconds is None
        else round(report.settle_seconds, 1),
        "peak_rss_mb": round(peak_mb, 1),
        "lost": report.lost if report else 0,
        "duplicated": report.duplicated if report else 0,
        "stopped_cleanly": stopped,
        "problems": problems,
    }


# ----- the local cloud, as a subprocess -----


def _start(state_dir: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "pushdeploy.cli.main", "local", "up", "--state-dir", str(state_dir)]
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    with (state_dir.parent / "local-up.log").open("wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [*command, *CLOUD_OPTIONS], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env
        )


def _await_ready(process: subprocess.Popen[bytes], state_dir: Path) -> None:
    log = state_dir.parent / "local-up.log"
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while not any(line.startswith("ready") for line in log.read_text(errors="replace").splitlines()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"local up did not get ready:\n{log.read_text(errors='replace')}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes], state_dir: Path, sampler: RssSampler) -> tuple[bool, list[str]]:
    """SIGTERM, then check that `local up` and every process it started are gone within the timeout."""
    family = process_tree(process.pid)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        status = process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        _kill_left(family)
        return False, [f"local up did not stop within {STOP_TIMEOUT_SECONDS:g} s of SIGTERM"]
    problems = [] if status == 0 else [f"local up exited {status} on SIGTERM"]
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while (left := [pid for pid in family if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    if left:
        problems.append(f"processes left behind by local up: {left}")
        _kill_left(left)
    if (state_dir / "local.json").exists():
        problems.append("local up left its state file behind")
    return not problems, problems


def _kill_left(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Running (not a zombie waiting for its parent to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# ----- resident memory of a process tree (Linux /proc) -----


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, live now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    """The peak of the summed resident memory of a process and all its descendants, sampled in a
    thread every `SAMPLE_SECONDS`."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_mb = 0.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def sample(self) -> float:
        total = sum(rss_mb(pid) for pid in process_tree(self.root))
        self.peak_mb = max(self.peak_mb, total)
        return total

    def _run(self) -> None:
        while not self._stopping.wait(SAMPLE_SECONDS):
            self.sample()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--services", type=int, default=SERVICES, help=f"default {SERVICES}")
    parser.add_argument("--versions", type=int, default=VERSIONS, help=f"versions per service ({VERSIONS})")
    args = parser.parse_args(argv)
    print(f"local cloud ({' '.join(CLOUD_OPTIONS)}); {args.services} services x {args.versions} versions ...")
    figures = measure_burst(args.services, args.versions)
    settle = "never" if figures["settle_s"] is None else f"{figures['settle_s']} s"
    print(
        f"burst: {figures['pushes']} pushes over {figures['services']} services\n"
        f"  {figures['pushes_per_s']} pushes/s accepted (ECR PutImage + PutEvents)\n"
        f"  all settled {settle} after the first push\n"
        f"  peak RSS {figures['peak_rss_mb']} MB (local up and all its children)\n"
        f"  lost {figures['lost']}, duplicated {figures['duplicated']}\n"
        f"  stopped cleanly on SIGTERM: {'yes' if figures['stopped_cleanly'] else 'no'}\n"
        f"  problems: {len(figures['problems'])}"
    )
    for problem in figures["problems"]:
        print(f"  problem: {problem}")
    return 1 if figures["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
