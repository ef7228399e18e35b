"""The token service: one key, distinct audiences, time passed in, and node-tak's reading."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from accord.identity.ca import PkiError
from accord.identity.token import (
    ACCESS_TOKEN_LIFETIME_S,
    LEEWAY_S,
    TOKEN_KEY,
    Audience,
    TokenError,
    TokenService,
    ensure_token_key,
)

NOW_S = 1_800_000_000.0


@pytest.fixture
def service() -> TokenService:
    return TokenService(Ed25519PrivateKey.generate(), "tak.example.org")


def node_tak_parse(token: str) -> dict[str, object]:
    """What node-tak's OAuth.parse does: base64-decode the whole token as Node's lenient
    decoder does (url alphabet accepted, '.' skipped, a trailing partial group dropped) and
    take the text between the first and second '}'."""
    text = token.replace("-", "+").replace("_", "/").replace(".", "")
    decoded = base64.b64decode(text[: len(text) // 4 * 4]).decode("utf-8", errors="replace")
    parts = [part + "}" for part in decoded.split("}")]
    return dict(json.loads(parts[1]))


def test_a_token_carries_sub_aud_nbf_exp_iat_and_verifies(service: TokenService) -> None:
    token = service.issue("alice", Audience.API, NOW_S)
    claims = service.verify(token, Audience.API, NOW_S + 60)
    assert claims.subject == "alice"
    assert claims.audience is Audience.API
    assert claims.expires_s - claims.issued_s == ACCESS_TOKEN_LIFETIME_S
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    payload = jwt.decode(token, options={"verify_signature": False})
    assert set(payload) >= {"sub", "aud", "nbf", "exp", "iat"}
    assert payload["sub"] == "alice"
    assert payload["nbf"] == payload["iat"] == int(NOW_S)


def test_node_tak_reads_the_payload_the_way_it_reads_tak_servers(service: TokenService) -> None:
    for name in ("alice", "a", "bo", "user.with-dots_and_more", "ünïcode"):
        token = service.issue(name, Audience.API, NOW_S)
        contents = node_tak_parse(token)
        assert contents["sub"] == name
        assert contents["aud"] == Audience.API.value
        assert contents["exp"] == int(NOW_S) + ACCESS_TOKEN_LIFETIME_S


def test_a_token_for_one_purpose_is_refused_for_another(service: TokenService) -> None:
    for issued in Audience:
        token = service.issue("alice", issued, NOW_S)
        for asked in Audience:
            if asked is issued:
                assert service.verify(token, asked, NOW_S).subject == "alice"
            else:
                with pytest.raises(TokenError, match="not issued for"):
                    service.verify(token, asked, NOW_S)


def test_expired_and_not_yet_valid_tokens_are_refused(service: TokenService) -> None:
    token = service.issue("alice", Audience.API, NOW_S, lifetime_s=600)
    assert service.verify(token, Audience.API, NOW_S + 600 + LEEWAY_S - 1).subject == "alice"
    with pytest.raises(TokenError, match="expired"):
        service.verify(token, Audience.API, NOW_S + 600 + LEEWAY_S)
    with pytest.raises(TokenError, match="not valid yet"):
        service.verify(token, Audience.API, NOW_S - LEEWAY_S - 1)


def test_another_key_issuer_or_a_tampered_token_is_refused(service: TokenService) -> None:
    token = service.issue("alice", Audience.API, NOW_S)
    other = TokenService(Ed25519PrivateKey.generate(), service.issuer)
    with pytest.raises(TokenError):
        other.verify(token, Audience.API, NOW_S)
    elsewhere = TokenService(service._key, "other.example.org")
    with pytest.raises(TokenError):
        elsewhere.verify(token, Audience.API, NOW_S)
    header, payload, signature = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged["sub"] = "admin"
    body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenError):
        service.verify(f"{header}.{body}.{signature}", Audience.API, NOW_S)
    # alg=none and HS256 signed with the public key are the classic confusions: both refused.
    unsigned = jwt.encode(forged, None, algorithm="none")
    with pytest.raises(TokenError):
        service.verify(unsigned, Audience.API, NOW_S)
    for garbage in ("", "x", "a.b.c", "." * 5000):
        with pytest.raises(TokenError):
            service.verify(garbage, Audience.API, NOW_S)


def test_names_that_would_break_a_flat_payload_are_refused(service: TokenService) -> None:
    for name in ("", "a}b", "{x"):
        with pytest.raises(TokenError):
            service.issue(name, Audience.API, NOW_S)


def test_the_key_is_made_once_private_and_kept(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    key = ensure_token_key(pki)
    path = pki / TOKEN_KEY
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = ensure_token_key(pki)
    token = TokenService(key, "x").issue("alice", Audience.API, NOW_S)
    assert TokenService(again, "x").verify(token, Audience.API, NOW_S).subject == "alice"
    path.chmod(0o644)
    with pytest.raises(PkiError, match="chmod 600"):
        ensure_token_key(pki)
    path.chmod(0o600)
    path.write_bytes(b"not a key")
    with pytest.raises(PkiError, match="remove it"):
        ensure_token_key(pki)


def test_a_token_from_before_the_password_was_set_predates_it() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from accord.identity.token import predates_password

    tokens = TokenService(Ed25519PrivateKey.generate(), "accord.test")
    claims = tokens.verify(tokens.issue("alice", Audience.API, 1000.9), Audience.API, 1001.0)
    assert not predates_password(claims, 1000_000)  # set in the same second: still valid
    assert not predates_password(claims, 999_000)
    assert predates_password(claims, 1001_000)  # a new password since
