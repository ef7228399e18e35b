"""PKCS#12 files that stock ATAK, WinTAK and iTAK open: a truststore and a client bundle.

Encryption is the *legacy* PKCS#12 profile on purpose: every bag (key and certificates)
is encrypted with pbeWithSHAAnd3-KeyTripleDES-CBC, the MAC is HMAC-SHA1, 2048 iterations.
It is the one profile all three clients read:

* iOS (iTAK) imports with ``SecPKCS12Import``, which rejects the PBES2/AES-256 files that
  OpenSSL 3 writes by default ("MAC verification failed ... wrong password?")
  (kube-rs/kube#691, kornelski/rust-security-framework#216, openssl/openssl#19871).
* Windows CryptoAPI (WinTAK) reads PBES2/AES only from Windows 10 1709 / Server 2019 on
  (Venafi/vcert#412); 3DES/SHA1 is read by every Windows.
* ATAK reads the files with Android's ``KeyStore.getInstance("PKCS12")``
  (ATAK-CIV ``takkernel/engine/src/android/java/com/atakmap/net/AtakCertificateDatabase.java``
  ``loadCertificate``) and hands the bytes to commo's OpenSSL; older Android PKCS#12
  providers cannot decrypt AES bags (chris2511/xca#389).
* The official TAK Server scripts pass ``-legacy`` to ``openssl pkcs12`` whenever OpenSSL 3 is
  installed (TAK-Product-Center/Server ``src/takserver-core/scripts/certs/makeCert.sh``,
  ``makeRootCa.sh``); OpenTAKServer (``opentakserver/certificate_authority.py``), taky
  (``taky/util/anc.py``) and pytak (``pytak/crypto_functions.py``) do the same.

Unlike ``openssl pkcs12 -legacy`` (RC2-40 for certificate bags) we use 3DES for the
certificate bags too: RC2 needs OpenSSL 3's legacy provider, 3DES does not
(openssl/openssl#12540).

The TAK convention for passwords is ``atakatak`` (TAK Server ``cert-metadata.sh`` ``CAPASS``);
ATAK 5.5 no longer falls back to it when a package names no password
(ATAK 5.5 ``ImportCertResolver.java``), so packages always carry the password explicitly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import (
    KeySerializationEncryption,
    PrivateFormat,
    pkcs12,
)
from cryptography.x509.oid import NameOID

DEFAULT_PASSWORD = "atakatak"  # TAK Server cert-metadata.sh CAPASS default
KDF_ROUNDS = 2048  # OpenSSL PKCS12_DEFAULT_ITER; what `openssl pkcs12 -legacy` writes
MAX_PASSWORD_CHARS = 128

# No 0/O, 1/l/I: a person may have to type the password on a phone (WinTAK/iTAK prompt for it
# when a file is imported by hand).
PASSWORD_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
GENERATED_PASSWORD_CHARS = 20  # 20 chars of 57 symbols ~ 116 bits


def check_password(password: str) -> None:
    """Refuse a password a TAK client cannot use: empty, non-ASCII, or with control characters.

    ATAK refuses a connection whose stored certificate password is empty
    (ATAK 5.5 ``CotService.java`` ``preferences_text448``); non-ASCII passwords are turned into
    PKCS#12 BMPStrings differently by Java, .NET and OpenSSL.
    """
    if not password:
        raise ValueError("a PKCS#12 password must not be empty (ATAK rejects empty passwords)")
    if len(password) > MAX_PASSWORD_CHARS:
        raise ValueError(f"a PKCS#12 password must be at most {MAX_PASSWORD_CHARS} characters")
    if not all(" " <= ch <= "~" for ch in password):
        raise ValueError(
            "a PKCS#12 password must be printable ASCII (TAK clients differ on other characters)"
        )


def new_password(
    random_bytes: Callable[[int], bytes], length: int = GENERATED_PASSWORD_CHARS
) -> str:
    """A random password from an unambiguous alphabet; pass ``secrets.token_bytes``.

    Uses rejection sampling so every symbol is equally likely.
    """
    if length < 12:
        raise ValueError("a generated password needs at least 12 characters")
    n = len(PASSWORD_ALPHABET)
    limit = 256 - 256 % n
    out: list[str] = []
    while len(out) < length:
        for byte in random_bytes(length * 2):
            if byte < limit:
                out.append(PASSWORD_ALPHABET[byte % n])
                if len(out) == length:
                    break
    return "".join(out)


def legacy_encryption(password: str) -> KeySerializationEncryption:
    """PBE-SHA1-3DES for key and certificate bags, HMAC-SHA1 MAC, 2048 rounds."""
    check_password(password)
    return (
        PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(KDF_ROUNDS)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())  # the PKCS#12 MAC that iOS and old Windows accept
        .build(password.encode("ascii"))
    )


def friendly_name(cert: x509.Certificate) -> bytes:
    """The certificate's CN, used as the PKCS#12 alias (as ``openssl pkcs12 -name/-caname``)."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = cns[0].value if cns else cert.subject.rfc4514_string()
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return text.encode("utf-8")


def encode_truststore(cas: Sequence[x509.Certificate], password: str = DEFAULT_PASSWORD) -> bytes:
    """A truststore (``caCert.p12``): CA certificates only, no key, each with its CN as alias.

    The alias matters: Android's PKCS#12 keystore lists certificate-only entries by
    friendlyName, and ATAK enumerates aliases to find the CAs.
    """
    if not cas:
        raise ValueError("a truststore needs at least one CA certificate")
    return pkcs12.serialize_key_and_certificates(
        name=None,
        key=None,
        cert=None,
        cas=[pkcs12.PKCS12Certificate(ca, friendly_name(ca)) for ca in cas],
        encryption_algorithm=legacy_encryption(password),
    )


def encode_client_bundle(
    key: rsa.RSAPrivateKey,
    cert: x509.Certificate,
    chain: Sequence[x509.Certificate],
    password: str = DEFAULT_PASSWORD,
) -> bytes:
    """A client identity (``clientCert.p12``): key + certificate + the CA chain above it.

    Mirrors TAK Server's ``makeCert.sh client``: ``-name <CN>`` for the key/cert pair and
    ``-CAfile ca.pem`` for the chain.
    """
    public = cert.public_key()
    if (
        not isinstance(public, rsa.RSAPublicKey)
        or public.public_numbers() != key.public_key().public_numbers()
    ):
        raise ValueError("the private key does not belong to the certificate")
    return pkcs12.serialize_key_and_certificates(
        name=friendly_name(cert),
        key=key,
        cert=cert,
        cas=[pkcs12.PKCS12Certificate(ca, friendly_name(ca)) for ca in chain],
        encryption_algorithm=legacy_encryption(password),
    )
