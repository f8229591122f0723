"""Cold import time of each function module, next to a bare `import boto3`, in the same run.

Builds a layer the way the layer's Makefile does (same requirements, pushdeploy without cli/ and local/,
bytecode precompiled), but with this machine's wheels: the real layer's aarch64 extensions cannot load
on a build host. Then starts a fresh interpreter per sample with that layer on the path, as Lambda's
/opt/python is, and times importing the function's app.py. boto3 comes from this venv (Lambda's runtime
ships its own). Prints medians; asserts nothing. Run with `.venv/bin/python benchmarks/cold_start.py [N]`.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = sorted(path.parent.name for path in (ROOT / "functions").glob("*/app.py"))

_TIMED_IMPORT = """
import time
started = time.perf_counter()
{statement}
print(time.perf_counter() - started)
"""


def build_layer(destination: Path, precompile: bool = True) -> Path:
    layer = destination / "python"
    source = ROOT / "layers" / "pushdeploy"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target", str(layer)]
    subprocess.run([*pip, "--requirement", str(source / "requirements.txt")], check=True, capture_output=True)
    ignored = shutil.ignore_patterns("cli", "local", "__pycache__")
    shutil.copytree(source / "pushdeploy", layer / "pushdeploy", ignore=ignored)
    if precompile:
        subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(layer)], check=True)
    return layer


def boto3_path() -> str:
    import boto3

    return str(Path(boto3.__file__).parent.parent)


def sample(statement: str, layer: Path, cwd: Path) -> float:
    # The layer first (as /opt/python), then boto3's site-packages (the runtime's own copy on Lambda).
    env = {
        **os.environ,
        "PYTHONPATH": f"{cwd}{os.pathsep}{layer}{os.pathsep}{boto3_path()}",
        "POWERTOOLS_SERVICE_NAME": "pushdeploy",
        "POWERTOOLS_METRICS_NAMESPACE": "pushdeploy",
        # Lambda's /opt is read-only: bytecode missing from the layer is compiled at every cold start.
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    script = _TIMED_IMPORT.format(statement=statement)
    finished = subprocess.run(
        [sys.executable, "-s", "-c", script], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    if finished.returncode != 0:
        sys.exit(f"{statement} failed in {cwd}:\n{finished.stderr}")
    return float(finished.stdout.strip().splitlines()[-1])


def median_ms(statement: str, layer: Path, cwd: Path, samples: int) -> float:
    sample(statement, layer, cwd)  # warm the OS file cache once
    return statistics.median(sample(statement, layer, cwd) for _ in range(samples)) * 1000


def paired(function: str, layer: Path, samples: int) -> tuple[float, float, float]:
    """The function's cold import and a bare `import boto3`, sampled in alternation so that both see the
    same moment of a noisy machine: (function ms, boto3 ms, the median of the per-pair ratios)."""
    folder = ROOT / "functions" / function
    sample("import boto3", layer, ROOT), sample("import app", layer, folder)  # warm the OS file cache
    pairs = [
        (sample("import app", layer, folder), sample("import boto3", layer, ROOT)) for _ in range(samples)
    ]
    ratio = statistics.median(app / bare for app, bare in pairs)
    function_ms = statistics.median(app for app, _ in pairs) * 1000
    return function_ms, statistics.median(bare for _, bare in pairs) * 1000, ratio


def measure(samples: int = 11) -> dict[str, float]:
    """`cold_import_ratio` of bench.json: each function's cold import (precompiled layer) over a bare
    `import boto3`, sampled in alternation (the machine is noisy: a ratio of neighbouring samples is
    comparable, two medians taken minutes apart are not)."""
    with tempfile.TemporaryDirectory() as tmp:
        layer = build_layer(Path(tmp) / "precompiled")
        ratios: dict[str, float] = {}
        for function in FUNCTIONS:
            function_ms, boto3_ms, ratio = paired(function, layer, samples)
            ratios[function] = round(ratio, 2)
            print(
                f"cold import functions/{function}/app: {function_ms:.0f} ms against import boto3 "
                f"{boto3_ms:.0f} ms: {ratios[function]:.2f}x (median of {samples} alternated pairs)"
            )
    return ratios


def main() -> None:
    samples = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    with tempfile.TemporaryDirectory() as tmp:
        layers = {
            True: build_layer(Path(tmp) / "precompiled"),
            False: build_layer(Path(tmp) / "source", precompile=False),
        }
        print(f"Python {sys.version.split()[0]}, median of {samples} fresh interpreters (ms)")
        print(f"  {'':32} {'precompiled':>12} {'no .pyc':>10}")
        boto3_ms = median_ms("import boto3", layers[True], ROOT, samples)
        print(f"  {'import boto3 (runtime, .pyc)':32} {boto3_ms:12.1f}")
        for function in FUNCTIONS:
            folder = ROOT / "functions" / function
            timings = [median_ms("import app", layers[flag], folder, samples) for flag in (True, False)]
            print(f"  {'functions/' + function + '/app':32} {timings[0]:12.1f} {timings[1]:10.1f}")


if __name__ == "__main__":
    main()
