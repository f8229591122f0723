"""The CLI against a "deployed stack" made of moto and the App Runner simulator: its outputs resolve to
the test tables, App Runner calls go to the simulator, and the operator's clock is the cloud's."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pushdeploy import installation
from pushdeploy.cli import context
from pushdeploy.cli.main import main
from tests.integration.harness import REGION, TABLES, Cloud


def as_stack(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> Cloud:
    """Make `pushdeploy ... --stack` (the default) act on `cloud`."""
    outputs = {"LedgerTableName": TABLES["LedgerTable"], "RulesTableName": TABLES["RulesTable"]}
    target = installation.Target(outputs=outputs, region=REGION, description="stack test")
    original = installation.Target.client_in

    def client_in(self: installation.Target, service: str, region: str | None) -> Any:
        return cloud.apprunner if service == "apprunner" else original(self, service, region)

    monkeypatch.setattr(context, "load_stack", lambda stack, region: target)
    monkeypatch.setattr(installation.Target, "client_in", client_in)
    monkeypatch.setattr(installation, "now", cloud.now)
    return cloud


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`pushdeploy ARGS...` in-process: exit status, stdout, stderr."""
    capsys.readouterr()  # drop what the handlers logged before
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    """As `run`, with stdout read as JSON: the command's, after any log lines of the functions the
    command invoked in-process (the webhook, say), which log and emit metrics on stdout as Lambda
    functions do."""
    status, out, err = run(capsys, *args)
    documents = []
    decoder = json.JSONDecoder()
    position = 0
    while out[position:].strip():
        position += len(out[position:]) - len(out[position:].lstrip())
        document, position = decoder.raw_decode(out, position)
        documents.append(document)
    command = [d for d in documents if not (isinstance(d, dict) and ("level" in d or "_aws" in d))]
    assert len(command) <= 1, f"more than one JSON document on stdout: {out}"
    return status, command[0] if command else None, err
