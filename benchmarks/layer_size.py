"""Size of the shared Lambda layer: `sam build SharedLayer` into a temporary directory.

Run with `.venv/bin/python benchmarks/layer_size.py` (SAM CLI from PATH, else .venv-tools/bin/sam).
Prints figures; asserts nothing.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def find_sam() -> str:
    found = shutil.which("sam") or str(ROOT / ".venv-tools" / "bin" / "sam")
    if not Path(found).exists():
        sys.exit("SAM CLI not found: run `make tools`")
    return found


def zipped_size(folder: Path) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder))
    return buffer.tell()


def main() -> None:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    with tempfile.TemporaryDirectory() as tmp:
        build_dir = Path(tmp) / "build"
        started = time.perf_counter()
        result = subprocess.run(
            [
                find_sam(),
                "build",
                "SharedLayer",
                "--build-dir",
                str(build_dir),
                "--template",
                "template.yaml",
                "--no-cached",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(f"sam build failed:\n{result.stdout}{result.stderr}")
        layer = build_dir / "SharedLayer"
        files = [p for p in layer.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        pycs = sum(1 for p in files if p.suffix == ".pyc")
        print(f"layer unzipped: {size / 1e6:.1f} MB, {len(files)} files ({pycs} precompiled .pyc)")
        print(f"layer zipped:   {zipped_size(layer) / 1e6:.1f} MB")
        print(f"sam build SharedLayer: {elapsed:.1f} s")


if __name__ == "__main__":
    main()
