"""Unit tests the app's own suite runs (no database needed)."""

from conduit.api import _slugify
from conduit.security import check_password, hash_password, make_token, read_token


def test_passwords_round_trip() -> None:
    stored = hash_password("correct horse")
    assert check_password("correct horse", stored)
    assert not check_password("wrong horse", stored)


def test_tokens_carry_the_user_and_need_the_secret() -> None:
    token = make_token(42, "a-secret-of-at-least-32-bytes-long", 60)
    assert read_token(token, "a-secret-of-at-least-32-bytes-long") == 42
    assert read_token(token, "another-secret-of-at-least-32-bytes") is None


def test_slugs() -> None:
    assert _slugify("How to Train Your Dragon!") == "how-to-train-your-dragon"
