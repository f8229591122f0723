"""What a function's cold start loads: the webhook answers every delivery without the controller, the
ledger or the deployment model (`benchmarks/cold_start.py` measures what that saves)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOT_FOR_THE_WEBHOOK = (
    "boto3",  # made on the first delivery
    "pushdeploy.runtime",
    "pushdeploy.controller",
    "pushdeploy.adapters.ledger",
    "pushdeploy.adapters.notifier",
    "pushdeploy.domain.deployments",
    "pushdeploy.domain.slot",
)


def loaded_by(function: str) -> set[str]:
    script = (
        "import json, sys\n"
        f"sys.path[:0] = [{str(ROOT / 'functions' / function)!r}, {str(ROOT / 'layers' / 'pushdeploy')!r}]\n"
        "import app\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    answer = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(json.loads(answer.stdout.splitlines()[-1]))


def test_the_webhook_loads_neither_the_controller_nor_the_ledger_nor_boto3_at_import() -> None:
    loaded = loaded_by("webhook")
    assert "pushdeploy.webhook" in loaded
    assert sorted(loaded.intersection(NOT_FOR_THE_WEBHOOK)) == []
