"""Onboarding QR codes: the payloads ATAK and iTAK scan, as terminal text and as PNG.

Payloads (sources are public repositories, read, not copied):

* ATAK (5.1+): ``tak://com.atakmap.app/enroll?host=<host>&username=<user>&token=<password>``.
  ATAK 5.5 ``CotMapComponent.java`` (``onStartUriReceiver``) takes exactly ``host``,
  ``username`` and ``token`` (all three required, else the scan is ignored) and calls
  ``CertificateEnrollmentClient.onEnrollmentOk``, which splits ``host`` on ``:`` into
  host, streaming port (default 8089) and protocol (only ``quic`` is honoured, else ``ssl``).
  The enrolment itself goes to the device's ``apiCertEnrollmentPort`` (default 8446); a QR
  code cannot change that port. This is "quick connect": ATAK does *not* use a shipped
  truststore but its own CAs plus the public ones, with host-name verification
  (``CertificateEnrollmentClient`` ``isQuickConnect``), so the enrolment port must present a
  publicly trusted certificate (TAK Server docs, Appendix E "Quick Connect") unless the device
  already trusts Accord's CA.
* iTAK "Scan QR": ``<description>,<host>,<port>,<protocol>``, four comma-separated fields, no
  quoting; iTAK then asks for user name and password and enrols (OpenTAKServer
  ``blueprints/ots_api/api.py`` ``/api/itak_qr_string`` writes ``...,8089,SSL``;
  joshuafuller/qrtak ``docs/qr-formats.md``).

Rendering uses segno (pure Python, writes PNG without Pillow).
"""

from __future__ import annotations

import io
from urllib.parse import quote

import segno

from accord.identity.package import STREAM_PORT, Endpoint

ENROLL_URI = "tak://com.atakmap.app/enroll"
QUIET_ZONE_MODULES = 4  # ISO/IEC 18004 quiet zone
PNG_SCALE = 8  # pixels per module: ~330 px for a typical enrolment URI

_FULL, _UPPER, _LOWER, _EMPTY = "\u2588", "\u2580", "\u2584", " "


def enrollment_uri(endpoint: Endpoint, username: str, token: str) -> str:
    """The ``tak://`` enrolment link ATAK scans (and pytak's ``parse_tak_url`` reads).

    The streaming port is added to ``host`` only when it is not 8089. Values are
    percent-encoded; Android's ``Uri.getQueryParameter`` decodes them.
    """
    if not username or not token:
        raise ValueError("an enrolment QR code needs a user name and a token (ATAK ignores it)")
    host = endpoint.host
    if endpoint.stream_port != STREAM_PORT:
        host = f"{host}:{endpoint.stream_port}"
    return (
        f"{ENROLL_URI}?host={quote(host, safe=':')}"
        f"&username={quote(username, safe='')}&token={quote(token, safe='')}"
    )


def quick_connect_csv(endpoint: Endpoint) -> str:
    """The iTAK server QR payload ``description,host,port,SSL``."""
    description = endpoint.description.strip()
    if any(ch in description for ch in ",\r\n"):
        raise ValueError(
            "the description goes into iTAK's comma-separated QR payload: "
            "remove commas and line breaks from it"
        )
    return f"{description},{endpoint.host},{endpoint.stream_port},SSL"


def _symbol(payload: str) -> segno.QRCode:
    if not payload:
        raise ValueError("a QR code needs a payload")
    # Level M survives glare on a phone screen; segno raises it further when that costs nothing.
    return segno.make_qr(payload, error="m")


def encode_png(payload: str, *, scale: int = PNG_SCALE, border: int = QUIET_ZONE_MODULES) -> bytes:
    """A black-on-white PNG of ``payload``."""
    buf = io.BytesIO()
    _symbol(payload).save(buf, kind="png", scale=scale, border=border)
    return buf.getvalue()


def encode_text(
    payload: str, *, border: int = QUIET_ZONE_MODULES, dark_background: bool = True
) -> str:
    """``payload`` as Unicode half blocks, two module rows per line, one module per column.

    On a dark terminal the glyphs are light, so the *light* modules are drawn (as
    ``qrencode -t UTF8`` does); set ``dark_background=False`` for a light terminal.
    """
    rows = [
        [bool(module) != dark_background for module in row]
        for row in _symbol(payload).matrix_iter(scale=1, border=border)
    ]
    if len(rows) % 2:
        rows.append([dark_background] * len(rows[0]))  # one more row of quiet zone
    lines = []
    for top, bottom in zip(rows[::2], rows[1::2], strict=True):
        lines.append(
            "".join(
                (_FULL if b else _UPPER) if t else (_LOWER if b else _EMPTY)
                for t, b in zip(top, bottom, strict=True)
            )
        )
    return "\n".join(lines) + "\n"


def encode_svg(payload: str, *, scale: int = PNG_SCALE, border: int = QUIET_ZONE_MODULES) -> bytes:
    """The same symbol as :func:`encode_png`, as a standalone SVG document."""
    buf = io.BytesIO()
    _symbol(payload).save(buf, kind="svg", scale=scale, border=border, xmldecl=False)
    return buf.getvalue()
