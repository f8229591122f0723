"""Shared test helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAYLOADS = ROOT / "tests" / "fixtures" / "payloads"
EVENTS = ROOT / "events"
EXAMPLE_RULES = ROOT / "examples" / "rules.yaml"

WEB_PROD = "arn:aws:apprunner:us-east-1:111122223333:service/web-prod/0123456789abcdef0123456789abcdef"
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def root() -> Path:
    return ROOT
