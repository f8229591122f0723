"""moto's DynamoDB, faster, with the same answers, for a test: `pushdeploy.local.fast_moto`'s patches (the
local cloud's moto server uses them too), applied with the test's monkeypatch so that they are undone."""

from __future__ import annotations

import pytest

from pushdeploy.local import fast_moto


def install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Use the item-level transaction backup and the plain attribute values until `monkeypatch` is undone."""
    for owner, name, value in fast_moto.patches():
        monkeypatch.setattr(owner, name, value)
