"""The ids of changes, deterministic: a redelivered event, a push found by two sweeps, or a signed push
delivered again maps to the same change, and the ledger's conditional writes record it once. Light (no
pydantic model of its own): the webhook imports it at cold start.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pushdeploy.domain.changes import Change

# Changes that deployed nothing (and the webhook's notes) expire from the ledger after this long.
UNDEPLOYED_CHANGE_TTL = timedelta(days=90)

ID_NAMESPACE = uuid.UUID("5d1c1f0e-3a43-4b8e-9a57-8f3f1e0c2b6a")


def change_id_for(event_id: str, position: int) -> str:
    """Deterministic: a redelivered event maps to the same change, so it is recorded once."""
    return str(uuid.uuid5(ID_NAMESPACE, f"change|{event_id}|{position}"))


def swept_change_id(change: Change) -> str:
    """A push the sweep found, known by what was pushed where: two sweeps that find it make one change."""
    parts = (*change.key, change.tag or "", change.branch or "", change.artifact)
    return str(uuid.uuid5(ID_NAMESPACE, "swept-change|" + "|".join(parts)))


def signed_change_id(change: Change) -> str:
    """A webhook push's change id, from what its sender signed (provider, repository, branch, commit and
    push time), never from the unsigned delivery id: the same push redelivered under any delivery id is
    the same change, and no delivery can name another push's record."""
    pushed_at = change.pushed_at.isoformat() if change.pushed_at else ""
    parts = (change.source, change.repository.lower(), change.branch or "", change.commit or "", pushed_at)
    return str(uuid.uuid5(ID_NAMESPACE, "signed-change|" + "|".join(parts)))
