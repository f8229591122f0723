"""Webhook signatures: what decides whether a delivery counts as signed by us."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pushdeploy.sources.signatures import check_signature, sign

BODY = b'{"ref": "refs/heads/main"}'


def test_sign_matches_githubs_documented_test_vector() -> None:
    assert (
        sign(b"Hello, World!", "It's a Secret to Everybody")
        == "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def test_a_body_signed_with_the_secret_is_valid() -> None:
    assert check_signature(BODY, sign(BODY, "s3cret"), ["s3cret"]) == "valid"


@pytest.mark.parametrize("signed_with", ["old-secret", "new-secret"])
def test_during_a_rotation_either_secret_is_valid(signed_with: str) -> None:
    assert check_signature(BODY, sign(BODY, signed_with), ["old-secret", "new-secret"]) == "valid"


@pytest.mark.parametrize("header", [None, "", "   "])
def test_no_signature_header_is_missing(header: str | None) -> None:
    assert check_signature(BODY, header, ["s3cret"]) == "missing"


def test_a_body_signed_with_another_secret_is_invalid() -> None:
    assert check_signature(BODY, sign(BODY, "guessed"), ["s3cret"]) == "invalid"


def test_a_tampered_body_is_invalid() -> None:
    assert check_signature(BODY + b" ", sign(BODY, "s3cret"), ["s3cret"]) == "invalid"


def test_a_correct_sha1_signature_is_invalid_because_only_sha256_counts() -> None:
    sha1 = "sha1=" + hmac.new(b"s3cret", BODY, hashlib.sha1).hexdigest()
    assert check_signature(BODY, sha1, ["s3cret"]) == "invalid"


@pytest.mark.parametrize("header", ["garbage", "sha256=", "sha256=zz", "sha256=é", sign(BODY, "s3cret")[7:]])
def test_a_malformed_header_is_invalid(header: str) -> None:
    assert check_signature(BODY, header, ["s3cret"]) == "invalid"


def test_upper_case_hex_and_surrounding_spaces_are_still_valid() -> None:
    assert check_signature(BODY, f"  sha256={sign(BODY, 's3cret')[7:].upper()} ", ["s3cret"]) == "valid"


def test_without_any_secret_a_signature_is_invalid() -> None:
    assert check_signature(BODY, sign(BODY, "s3cret"), []) == "invalid"


def test_an_empty_secret_never_validates_a_body_signed_with_no_secret() -> None:
    assert check_signature(BODY, sign(BODY, ""), [""]) == "invalid"


@given(body=st.binary(), secret=st.text(min_size=1), other=st.binary())
def test_signing_round_trips_and_any_other_body_is_invalid(body: bytes, secret: str, other: bytes) -> None:
    assert check_signature(body, sign(body, secret), [secret]) == "valid"
    if other != body:
        assert check_signature(other, sign(body, secret), [secret]) == "invalid"


@given(body=st.binary(), header=st.text(), secrets=st.lists(st.text()))
def test_any_header_gets_one_of_the_three_answers(body: bytes, header: str, secrets: list[str]) -> None:
    assert check_signature(body, header, secrets) in ("valid", "invalid", "missing")
