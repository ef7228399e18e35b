"""The one token service: every bearer token the server issues is signed here.

Tokens are JWTs (RFC 7519) signed with EdDSA (Ed25519, RFC 8037). Each carries ``sub`` (the
user), ``aud`` (what it is for), ``iss`` (this server), ``iat``, ``nbf`` and ``exp`` (seconds
since 1970, flat claims: node-tak reads the payload by hand, see :func:`issue`). A token is
accepted only for the audience it was issued for, so an API access token is refused where a
mission token or a web session is asked for, and the other way round.

Why Ed25519 and not HS256: the key that verifies cannot sign, so the public half can be handed
to another process (a cluster node, a web front) without giving it the power to mint sign-ins;
signatures are short and fast; and the server already keeps Ed25519 keys for its ledger. The
private key is ``<data_dir>/pki/token.key`` (PKCS#8 PEM, mode 0600), made on first ``serve``.

Pure apart from :func:`ensure_token_key` (a file): the key and ``now`` are passed in.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from accord.identity.ca import PkiError, check_key_private, write_private

TOKEN_KEY = "token.key"
ALGORITHM = "EdDSA"
# Spring Security OAuth2's default access token validity, which TAK Server keeps: 12 hours.
ACCESS_TOKEN_LIFETIME_S = 12 * 3600
# Clocks of the machines that check a token (nbf, exp) may differ this much from ours.
LEEWAY_S = 30
MAX_TOKEN_BYTES = 4096  # far above any token issued here; a larger one is not parsed


class Audience(enum.Enum):
    """What a token is for; one audience per purpose."""

    API = "accord-api"  # POST /oauth/token: the Marti API and enrollment on the 8446 port
    MISSION = "accord-mission"  # mission tokens (Data Sync)
    WEB = "accord-web"  # web UI sessions


class TokenError(ValueError):
    """The token is not one of ours, not for this purpose, or not valid now; says which."""


@dataclass(frozen=True, slots=True)
class Claims:
    subject: str
    audience: Audience
    issued_s: int
    expires_s: int


class TokenService:
    """Issues and checks the server's tokens with one key."""

    def __init__(self, key: Ed25519PrivateKey, issuer: str) -> None:
        self._key = key
        self._public = key.public_key()
        self.issuer = issuer

    def issue(
        self,
        subject: str,
        audience: Audience,
        now_s: float,
        lifetime_s: int = ACCESS_TOKEN_LIFETIME_S,
    ) -> str:
        """A signed token for ``subject``, valid from ``now_s`` for ``lifetime_s`` seconds.

        The payload stays flat (no nested objects, no ``}`` in values: a user name with one is
        refused): node-tak decodes a TAK token by base64-decoding the whole string and splitting
        it at ``}``; the header PyJWT writes (``{"alg":"EdDSA","typ":"JWT"}``, 27 bytes) is a
        whole number of base64 groups, so the payload decodes in place.
        """
        if not subject or "}" in subject or "{" in subject:
            raise TokenError(f"cannot issue a token for the name {subject[:64]!r}")
        now = int(now_s)
        claims: dict[str, Any] = {
            "sub": subject,
            "aud": audience.value,
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_s,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str, audience: Audience, now_s: float) -> Claims:
        """The claims of a token issued here for ``audience`` and valid at ``now_s``."""
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenError("token too long")
        try:
            # Times are checked below against the ``now`` passed in, not the library's clock.
            claims = jwt.decode(
                token,
                self._public,
                algorithms=[ALGORITHM],
                audience=audience.value,
                issuer=self.issuer,
                options={
                    "require": ["sub", "aud", "iss", "iat", "nbf", "exp"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidAudienceError:
            raise TokenError(f"token not issued for {audience.value}") from None
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        subject, nbf, exp, iat = claims["sub"], claims["nbf"], claims["exp"], claims["iat"]
        if not isinstance(subject, str) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in (nbf, exp, iat)
        ):
            raise TokenError("invalid token: malformed claims")
        if now_s + LEEWAY_S < nbf:
            raise TokenError("token not valid yet")
        if now_s - LEEWAY_S >= exp:
            raise TokenError("token expired")
        return Claims(subject, audience, iat, exp)


def predates_password(claims: Claims, password_changed_ms: int) -> bool:
    """Whether the token was issued before its user's password was last set (a password
    change ends every session). ``iat`` has whole seconds: a token from the very second of
    the change still counts as after it."""
    return claims.issued_s < password_changed_ms // 1000


def ensure_token_key(pki_root: Path) -> Ed25519PrivateKey:
    """The token signing key in ``pki_root``, made (mode 0600) when there is none yet."""
    path = pki_root / TOKEN_KEY
    if not path.exists():
        pki_root.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(path, pem)
        return key
    check_key_private(path)
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise PkiError(
            f"cannot read the token key {path} ({exc}); remove it to make a new one "
            "(everyone signed in with a token then signs in again)"
        ) from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise PkiError(f"{path} is not an Ed25519 key; remove it to make a new one")
    return loaded
