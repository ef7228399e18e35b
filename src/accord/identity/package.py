"""Connection data packages (zip bytes) that ATAK, WinTAK and iTAK import to reach Accord.

Two kinds, each in two layouts (``flavour``):

* ``connection_package``: truststore + client certificate; the device connects at once.
* ``enrollment_package``: truststore only; the device asks for a user name and password and
  enrols for its client certificate on the enrolment port (8446).

``"atak"`` (ATAK and WinTAK)::

    MANIFEST/manifest.xml         MissionPackageManifest version="2"
    certs/config.pref             cot_streams + com.atakmap.app_preferences
    certs/truststore-<host>.p12
    certs/<user>-<host>.p12       (connection package only)

``"itak"``: the same files flat at the zip root and no ``MANIFEST/`` folder.

Why these choices (sources are public repositories, read, not copied):

* Certificate keys are **per connection** (``caLocation0``, ``caPassword0``, ``clientPassword0``,
  ``certificateLocation0``), which is what ATAK's pref loader reads
  (ATAK-CIV ``atak/ATAK/app/src/main/java/com/atakmap/app/preferences/PreferenceControl.java``
  ``loadSettings``, same in ATAK 5.5). Packages that put them in the global
  ``com.atakmap.app_preferences`` with absolute ``/storage/emulated/0/atak/cert/...`` paths
  (taky ``cli/build_client_cmd.py``, OpenTAKServer ``certificate_authority.py``) work once and
  then lose the certificates on ATAK 5.x (brian7704/OpenTAKServer#360; very likely the
  "re-import your trust store" failure of tkuester/taky#103).
* Paths are **relative**, ``cert/<file>``: ATAK moves every imported ``.p12`` to
  ``<atak root>/cert/<basename>`` (``ImportCertResolver`` is built with ``getItem("cert")``) and
  resolves a relative location against the ATAK root (``AtakCertificateDatabase.importCertificate``
  -> ``FileSystemUtils.getItem``), whatever storage the device uses. The zip folder name does not
  matter to ATAK; ``certs/`` is the community convention (pytak ``onboarding_packages.py``,
  taky, Cloud-RF/tak-server ``scripts/certDP.sh``).
* **Passwords are always written**: ATAK 5.5 stopped defaulting to ``atakatak``
  (``ImportCertResolver.java`` only saves a password the package names).
* **File names carry the host**: WinTAK keeps imported certificates by file name in
  ``%AppData%\\WinTAK\\SslCerts`` and confuses two servers' ``server.p12`` (tkuester/taky#39).
* WinTAK imports the ATAK layout (tkuester/taky#103: the same package "works immediately" on
  WinTAK); OpenTAKServer and FreeTAKServer wrap it in a second zip "because WinTAK", which
  nobody explains and we do not copy.
* iTAK: every generator that reports working iTAK imports puts the files flat at the root
  (OpenTAKServer ``generate_zip`` iTAK branch, taky PR #66 "must not have any subfolders",
  pytak ``package_layout="itak"``) and names the certificates with the *unsuffixed* keys in
  ``com.atakmap.app_preferences`` with ``cert/<file>`` paths; pytak uses the suffixed keys
  instead. The iTAK layout therefore writes both sets, and no manifest folder.
* Enrolment keys: ``enrollForCertificateWithTrust0``, ``useAuth0``, ``cacheCreds0``
  (``"Cache credentials"`` = ATAK string ``cache_creds_both``); ATAK reads no user name or
  password from a pref file and prompts for them (``PreferenceControl.loadSettings``,
  ``ImportCertResolver.finalizeImport`` -> ``CertificateEnrollmentClient.enroll``).
  ``enrollUseTrust0`` defaults to true in ATAK 5.x, i.e. the enrolment port must present a
  certificate that chains to the shipped truststore.
* Non-default HTTPS/enrolment ports go in the global string prefs ``apiSecureServerPort`` and
  ``apiCertEnrollmentPort`` (ATAK ``CotMapComponent.java``); they are omitted at 8443/8446.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from dataclasses import dataclass
from typing import Literal

from lxml import etree

from accord.identity.p12 import check_password

Flavour = Literal["atak", "itak"]
FLAVOURS: tuple[Flavour, ...] = ("atak", "itak")

STREAM_PORT = 8089  # TLS streaming (CoreConfig.example.xml "stdssl")
API_PORT = 8443  # Marti HTTPS API; ATAK SslNetCotPort SERVER_API_PORT_SECURE
ENROLLMENT_PORT = 8446  # ATAK SslNetCotPort SERVER_API_PORT_CERT_ENROLLMENT

CACHE_CREDENTIALS = "Cache credentials"  # ATAK strings.xml cache_creds_both
CACHE_USERNAME = "Cache username"  # ATAK strings.xml cache_creds_username
CACHE_NOTHING = ""

MANIFEST_ENTRY = "MANIFEST/manifest.xml"
PREF_FILE = "config.pref"
ATAK_FOLDER = "certs/"
DEVICE_CERT_DIR = "cert/"  # where ATAK files an imported .p12, relative to its root

_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")

PrefValue = str | bool | int


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a device reaches Accord: host name or IPv4 address, and the three ports."""

    host: str
    description: str
    stream_port: int = STREAM_PORT
    api_port: int = API_PORT
    enrollment_port: int = ENROLLMENT_PORT

    def __post_init__(self) -> None:
        if not _HOST.match(self.host):
            raise ValueError(
                f"host {self.host!r} cannot go in a TAK connect string: use a DNS name or IPv4 "
                "address (ATAK splits host:port:proto on ':', so IPv6 literals do not work)"
            )
        if not self.description.strip():
            raise ValueError("the connection description must not be empty")
        for label, port in (
            ("stream_port", self.stream_port),
            ("api_port", self.api_port),
            ("enrollment_port", self.enrollment_port),
        ):
            if not 0 < port < 65536:
                raise ValueError(f"{label} {port} is not a TCP port (1-65535)")

    @property
    def connect_string(self) -> str:
        """``host:port:ssl``, the form ATAK's ``CotService.addStreamingImpl`` accepts."""
        return f"{self.host}:{self.stream_port}:ssl"


@dataclass(frozen=True, slots=True)
class Identity:
    """Optional device settings written to ``com.atakmap.app_preferences``.

    ``team`` is one of ATAK's team colours (e.g. ``Cyan``), ``role`` an ATAK role
    (e.g. ``Team Member``); the values are passed through as given.
    """

    callsign: str | None = None
    team: str | None = None
    role: str | None = None


@dataclass(frozen=True, slots=True)
class P12File:
    """A PKCS#12 file as it goes into a package: its file name, bytes and password."""

    name: str
    data: bytes
    password: str

    def __post_init__(self) -> None:
        if not self.name.endswith(".p12") or self.name != safe_filename(self.name):
            raise ValueError(
                f"{self.name!r} is not a plain .p12 file name (letters, digits, '.', '_', '-')"
            )
        check_password(self.password)


def safe_filename(text: str) -> str:
    """``text`` with everything but letters, digits, ``.``, ``_`` and ``-`` turned into ``_``."""
    return _UNSAFE_FILE_CHARS.sub("_", text).strip("._") or "accord"


def truststore_filename(host: str) -> str:
    """``truststore-<host>.p12``: unique per server, so WinTAK keeps two servers apart."""
    return f"truststore-{safe_filename(host)}.p12"


def client_filename(username: str, host: str) -> str:
    """``<user>-<host>.p12``."""
    return f"{safe_filename(username)}-{safe_filename(host)}.p12"


def connection_package(
    endpoint: Endpoint,
    truststore: P12File,
    client: P12File,
    *,
    uid: str,
    now: dt.datetime,
    flavour: Flavour = "atak",
    identity: Identity | None = None,
) -> bytes:
    """A package with truststore and client certificate: import it and the device connects."""
    if truststore.name == client.name:
        raise ValueError("the truststore and the client certificate need different file names")
    return _package(
        endpoint,
        truststore,
        client,
        uid=uid,
        now=now,
        flavour=flavour,
        identity=identity,
        cache_credentials=None,
    )


def enrollment_package(
    endpoint: Endpoint,
    truststore: P12File,
    *,
    uid: str,
    now: dt.datetime,
    flavour: Flavour = "atak",
    identity: Identity | None = None,
    cache_credentials: str = CACHE_CREDENTIALS,
) -> bytes:
    """A package with the truststore only: the device prompts for credentials and enrols.

    ``cache_credentials`` is ATAK's ``cacheCreds`` choice: ``CACHE_CREDENTIALS``,
    ``CACHE_USERNAME`` or ``CACHE_NOTHING``.
    """
    if cache_credentials not in (CACHE_CREDENTIALS, CACHE_USERNAME, CACHE_NOTHING):
        raise ValueError(f"unknown cacheCreds value {cache_credentials!r}")
    return _package(
        endpoint,
        truststore,
        None,
        uid=uid,
        now=now,
        flavour=flavour,
        identity=identity,
        cache_credentials=cache_credentials,
    )


def _package(
    endpoint: Endpoint,
    truststore: P12File,
    client: P12File | None,
    *,
    uid: str,
    now: dt.datetime,
    flavour: Flavour,
    identity: Identity | None,
    cache_credentials: str | None,
) -> bytes:
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown package flavour {flavour!r}; use one of {FLAVOURS}")
    if not uid.strip():
        raise ValueError("the package uid must not be empty")
    folder = ATAK_FOLDER if flavour == "atak" else ""
    pref = encode_pref(
        endpoint,
        truststore,
        client,
        flavour=flavour,
        identity=identity,
        cache_credentials=cache_credentials,
    )
    files: list[tuple[str, bytes]] = [
        (folder + PREF_FILE, pref),
        (folder + truststore.name, truststore.data),
    ]
    if client is not None:
        files.append((folder + client.name, client.data))
    if flavour == "atak":
        manifest = encode_manifest(uid, endpoint.description, [name for name, _ in files])
        files.insert(0, (MANIFEST_ENTRY, manifest))
    return _zip(files, now)


def encode_manifest(uid: str, name: str, entries: list[str]) -> bytes:
    """``MANIFEST/manifest.xml``: ``MissionPackageManifest version="2"`` listing ``entries``.

    Shape from TAK Server ``takserver-war/.../util/missionpackage/MissionPackage.java`` and
    ``mp.xsd``; ``onReceiveDelete`` drops the package from the device once imported (TAK
    Server ``ProfileService.createProfileMissionPackage`` sets it too).
    """
    root = etree.Element("MissionPackageManifest", {"version": "2"})
    config = etree.SubElement(root, "Configuration")
    for key, value in (("uid", uid), ("name", name), ("onReceiveDelete", "true")):
        etree.SubElement(config, "Parameter", {"name": key, "value": value})
    contents = etree.SubElement(root, "Contents")
    for entry in entries:
        etree.SubElement(contents, "Content", {"ignore": "false", "zipEntry": entry})
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def encode_pref(
    endpoint: Endpoint,
    truststore: P12File,
    client: P12File | None,
    *,
    flavour: Flavour = "atak",
    identity: Identity | None = None,
    cache_credentials: str | None = None,
) -> bytes:
    """The ``.pref`` file: one ``cot_streams`` connection plus app preferences.

    ``cache_credentials`` not ``None`` makes it an enrolment connection.
    """
    ca_location = DEVICE_CERT_DIR + truststore.name
    stream: list[tuple[str, PrefValue]] = [
        ("count", 1),
        ("description0", endpoint.description),
        ("enabled0", True),
        ("connectString0", endpoint.connect_string),
        ("caLocation0", ca_location),
        ("caPassword0", truststore.password),
    ]
    app: list[tuple[str, PrefValue]] = [("displayServerConnectionWidget", True)]
    if flavour == "itak":
        app += [("caLocation", ca_location), ("caPassword", truststore.password)]
    if client is not None:
        client_location = DEVICE_CERT_DIR + client.name
        stream += [("certificateLocation0", client_location), ("clientPassword0", client.password)]
        if flavour == "itak":
            app += [("certificateLocation", client_location), ("clientPassword", client.password)]
    if cache_credentials is not None:
        stream += [
            ("enrollForCertificateWithTrust0", True),
            ("useAuth0", True),
            ("cacheCreds0", cache_credentials),
        ]
    if endpoint.api_port != API_PORT:
        app.append(("apiSecureServerPort", str(endpoint.api_port)))
    if endpoint.enrollment_port != ENROLLMENT_PORT:
        app.append(("apiCertEnrollmentPort", str(endpoint.enrollment_port)))
    if identity is not None:
        for key, setting in (
            ("locationCallsign", identity.callsign),
            ("locationTeam", identity.team),
            ("atakRoleType", identity.role),
        ):
            if setting:
                app.append((key, setting))

    root = etree.Element("preferences")
    for name, entries in (("cot_streams", stream), ("com.atakmap.app_preferences", app)):
        section = etree.SubElement(root, "preference", {"version": "1", "name": name})
        for key, pref_value in entries:
            _entry(section, key, pref_value)
    return etree.tostring(
        root, xml_declaration=True, encoding="ASCII", standalone=True, pretty_print=True
    )


def _entry(section: etree._Element, key: str, value: PrefValue) -> None:
    """``<entry key=".." class="class java.lang.T">value</entry>``, as ATAK exports prefs."""
    if isinstance(value, bool):
        java, text = "Boolean", "true" if value else "false"
    elif isinstance(value, int):
        java, text = "Integer", str(value)
    else:
        java, text = "String", value
    entry = etree.SubElement(section, "entry", {"key": key, "class": f"class java.lang.{java}"})
    entry.text = text


def _zip(files: list[tuple[str, bytes]], now: dt.datetime) -> bytes:
    """Zip ``files`` in order, every entry stamped ``now`` (same inputs, same layout)."""
    if now.year < 1980:
        raise ValueError("zip timestamps start in 1980")
    stamp = (now.year, now.month, now.day, now.hour, now.minute, now.second)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buf.getvalue()
