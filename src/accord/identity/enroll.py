"""Certificate enrollment, as ATAK, WinTAK and iTAK do it (reference tak-protocol §4.9).

The device asks for the name entries (``/tls/config``), makes a key and a CSR with
``CN=<username>``, and posts the CSR (base64 DER, PEM armour stripped) to ``/tls/signClient/v2``;
it gets back its certificate and the CA chain. Everything a peer sends is checked here and
refused with a reason: :class:`EnrollError` is the only error that leaves this module.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from accord.identity import registry
from accord.identity.ca import PkiPaths, issue_for_key, load_authority

MAX_CSR_BYTES = 16 * 1024
MIN_RSA_BITS = 2048
MIN_EC_BITS = 256
# The name entries a device copies into its CSR (Accord issues with its own subject anyway:
# O=Accord, CN=<user>). Two entries, as TAK Server sends: node-tak reads the list as an array
# and finds nothing in a single entry.
ORGANIZATION = "Accord"
ORGANIZATIONAL_UNIT = "Accord"
# TAK Server marshals CertificateConfig as <ns2:certificateConfig> in JAXB's namespace
# "com.bbn.marti.config", its children in the default namespace (ATAK's @Namespace); node-tak
# looks the root up by the literal name "ns2:certificateConfig".
CONFIG_NAMESPACE = "http://bbn.com/marti/xml/config"
CONFIG_ROOT_NAMESPACE = "com.bbn.marti.config"


class EnrollError(ValueError):
    """The request cannot be honoured; the message says why (it is sent back as a 400)."""


@dataclass(frozen=True, slots=True)
class Signed:
    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # issuing CA first


def certificate_config() -> bytes:
    """``GET /Marti/api/tls/config``: the name entries a CSR carries, in TAK Server's shape."""
    # lxml spells the default namespace with the key None, which its stubs do not allow.
    nsmap = {None: CONFIG_NAMESPACE, "ns2": CONFIG_ROOT_NAMESPACE}
    root = etree.Element(f"{{{CONFIG_ROOT_NAMESPACE}}}certificateConfig", nsmap=nsmap)  # type: ignore[arg-type]
    entries = etree.SubElement(root, f"{{{CONFIG_NAMESPACE}}}nameEntries")
    for name, value in (("O", ORGANIZATION), ("OU", ORGANIZATIONAL_UNIT)):
        entry = etree.SubElement(entries, f"{{{CONFIG_NAMESPACE}}}nameEntry")
        entry.set("name", name)
        entry.set("value", value)
    # JAXB's declaration, double quotes and all (commo and xml-js take either).
    declaration = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    return declaration + bytes(etree.tostring(root, encoding="UTF-8"))


def decode_csr(body: bytes) -> x509.CertificateSigningRequest:
    """A CSR as ATAK posts it (bare base64 DER), or as PEM, or raw DER."""
    if not body.strip():
        raise EnrollError("empty request: post the CSR (base64 DER or PEM) as the body")
    if len(body) > MAX_CSR_BYTES:
        raise EnrollError(f"CSR larger than {MAX_CSR_BYTES} bytes")
    try:
        if b"-----BEGIN" in body:
            return x509.load_pem_x509_csr(body)
        try:
            der = base64.b64decode(b"".join(body.split()), validate=True)
        except binascii.Error:
            der = body
        return x509.load_der_x509_csr(der)
    except ValueError:
        raise EnrollError("the body is not a certificate signing request") from None


def check_csr(csr: x509.CertificateSigningRequest, username: str) -> None:
    """Refuse a CSR that is forged, names someone else, or has a weak key."""
    if not csr.is_signature_valid:
        raise EnrollError("the CSR's signature does not verify")
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        raise EnrollError("the CSR must name exactly one CN")
    cn = str(names[0].value)
    if cn.lower() != username.lower():
        raise EnrollError(f"the CSR's CN {cn!r} is not the signed-in user {username!r}")
    key = csr.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise EnrollError(f"RSA key of {key.key_size} bits is too weak: use {MIN_RSA_BITS}+")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.key_size < MIN_EC_BITS:
            raise EnrollError(f"EC key on {key.curve.name} is too weak: use P-256 or larger")
    else:
        raise EnrollError("the CSR's key must be RSA or EC")


def sign(paths: PkiPaths, username: str, body: bytes, now: dt.datetime) -> Signed:
    """Check the CSR and issue the user's client certificate for its key (recorded, revocable).

    The certificate's subject is Accord's own (``O=Accord, CN=<user>``), whatever else the CSR
    asked for: only the key and the user come from the device.
    """
    csr = decode_csr(body)
    check_csr(csr, username)
    ca = load_authority(paths)
    cert = issue_for_key(ca, username, csr.public_key(), now, server=False)
    registry.record(paths, username, "client", cert)
    return Signed(cert, (ca.cert,))


def _b64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def encode_json(signed: Signed) -> dict[str, str]:
    """``signClient/v2`` JSON: ``signedCert`` and ``ca0``, ``ca1``… as bare base64 DER."""
    out = {"signedCert": _b64(signed.cert)}
    out.update({f"ca{i}": _b64(ca) for i, ca in enumerate(signed.chain)})
    return out


def encode_xml(signed: Signed) -> bytes:
    """``signClient/v2`` with ``Accept: application/xml``: ``<enrollment>``."""
    root = etree.Element("enrollment")
    etree.SubElement(root, "signedCert").text = _b64(signed.cert)
    for ca in signed.chain:
        etree.SubElement(root, "ca").text = _b64(ca)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
