"""Webhook signatures: `sha256=<hex HMAC-SHA256 of the raw body>`, as GitHub and Bitbucket Cloud send them."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from pushdeploy.domain.changes import SignatureState

_PREFIX = "sha256="


def sign(body: bytes, secret: str) -> str:
    return _PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_signature(body: bytes, header_value: str | None, secrets: Sequence[str]) -> SignatureState:
    """`valid` when the header matches the body signed with any of `secrets` (several during a rotation).

    Anything else in the header, a SHA-1 signature included, is `invalid`. An empty secret is skipped: it
    would accept a body signed with no secret at all.
    """
    if header_value is None or not header_value.strip():
        return "missing"
    sent = header_value.strip().lower().encode()
    # Check every secret without stopping early, so the timing does not tell which one matched.
    matches = [hmac.compare_digest(sign(body, secret).encode(), sent) for secret in secrets if secret]
    return "valid" if any(matches) else "invalid"
