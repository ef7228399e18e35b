"""Connection and enrolment data packages: layout per flavour, manifest and pref contents."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from lxml import etree

from accord.identity import p12
from accord.identity.ca import Authority, issue, load_authority
from accord.identity.package import (
    CACHE_USERNAME,
    Endpoint,
    Identity,
    P12File,
    client_filename,
    connection_package,
    enrollment_package,
    truststore_filename,
)
from accord.identity.pki import ensure_pki

NOW = dt.datetime(2026, 5, 1, 12, 30, 10, tzinfo=dt.UTC)
HOST = "tak.example.org"
UID = "8f1c6a8e-3f57-4d0e-9a43-0b5f3f2b9d11"
CA_FILE = "truststore-tak.example.org.p12"
CLIENT_FILE = "alice-tak.example.org.p12"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    root: Path = tmp_path_factory.mktemp("pki")
    return load_authority(ensure_pki(root, (HOST,), NOW))


@pytest.fixture(scope="module")
def truststore(ca: Authority) -> P12File:
    return P12File(
        truststore_filename(HOST), p12.encode_truststore([ca.cert], "trust-pw"), "trust-pw"
    )


@pytest.fixture(scope="module")
def client(ca: Authority) -> P12File:
    cert, key = issue(ca, "alice", NOW, server=False)
    data = p12.encode_client_bundle(key, cert, [ca.cert], "client-pw")
    return P12File(client_filename("alice", HOST), data, "client-pw")


ENDPOINT = Endpoint(HOST, "Accord & <friends>")


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        return {info.filename: zf.read(info) for info in zf.infolist()}


def prefs(data: bytes) -> dict[str, dict[str, tuple[str, str]]]:
    """``{preference name: {key: (java class, text)}}``."""
    root = etree.fromstring(data)
    assert root.tag == "preferences"
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for section in root.findall("preference"):
        assert section.get("version") == "1"
        entries = {
            str(e.get("key")): (str(e.get("class")), e.text or "") for e in section.findall("entry")
        }
        out[str(section.get("name"))] = entries
    return out


def manifest(data: bytes) -> tuple[dict[str, str], list[str]]:
    root = etree.fromstring(data)
    assert root.tag == "MissionPackageManifest"
    assert root.get("version") == "2"
    params = {
        str(p.get("name")): str(p.get("value")) for p in root.findall("Configuration/Parameter")
    }
    contents = root.findall("Contents/Content")
    assert all(c.get("ignore") == "false" for c in contents)
    return params, [str(c.get("zipEntry")) for c in contents]


STRING = "class java.lang.String"
BOOLEAN = "class java.lang.Boolean"
INTEGER = "class java.lang.Integer"


def test_atak_connection_package_layout(truststore: P12File, client: P12File) -> None:
    files = unzip(connection_package(ENDPOINT, truststore, client, uid=UID, now=NOW))
    assert list(files) == [
        "MANIFEST/manifest.xml",
        "certs/config.pref",
        f"certs/{CA_FILE}",
        f"certs/{CLIENT_FILE}",
    ]
    assert files[f"certs/{CA_FILE}"] == truststore.data
    assert files[f"certs/{CLIENT_FILE}"] == client.data


def test_atak_manifest_lists_every_other_entry(truststore: P12File, client: P12File) -> None:
    files = unzip(connection_package(ENDPOINT, truststore, client, uid=UID, now=NOW))
    params, entries = manifest(files["MANIFEST/manifest.xml"])
    assert params == {"uid": UID, "name": "Accord & <friends>", "onReceiveDelete": "true"}
    assert entries == [name for name in files if name != "MANIFEST/manifest.xml"]


def test_atak_pref_names_the_connection_and_its_certificates(
    truststore: P12File, client: P12File
) -> None:
    files = unzip(connection_package(ENDPOINT, truststore, client, uid=UID, now=NOW))
    assert files["certs/config.pref"].startswith(
        b"<?xml version='1.0' encoding='ASCII' standalone='yes'?>"
    )
    pref = prefs(files["certs/config.pref"])
    assert pref["cot_streams"] == {
        "count": (INTEGER, "1"),
        "description0": (STRING, "Accord & <friends>"),
        "enabled0": (BOOLEAN, "true"),
        "connectString0": (STRING, "tak.example.org:8089:ssl"),
        "caLocation0": (STRING, f"cert/{CA_FILE}"),
        "caPassword0": (STRING, "trust-pw"),
        "certificateLocation0": (STRING, f"cert/{CLIENT_FILE}"),
        "clientPassword0": (STRING, "client-pw"),
    }
    # ATAK: certificates only per connection, never as global keys (OpenTAKServer#360).
    assert pref["com.atakmap.app_preferences"] == {
        "displayServerConnectionWidget": (BOOLEAN, "true"),
    }


def test_p12_files_open_with_the_passwords_the_pref_gives(
    ca: Authority, truststore: P12File, client: P12File
) -> None:
    files = unzip(connection_package(ENDPOINT, truststore, client, uid=UID, now=NOW))
    streams = prefs(files["certs/config.pref"])["cot_streams"]
    ca_entry = "certs/" + streams["caLocation0"][1].removeprefix("cert/")
    client_entry = "certs/" + streams["certificateLocation0"][1].removeprefix("cert/")
    _, _, trusted = pkcs12.load_key_and_certificates(
        files[ca_entry], streams["caPassword0"][1].encode()
    )
    key, cert, chain = pkcs12.load_key_and_certificates(
        files[client_entry], streams["clientPassword0"][1].encode()
    )
    assert trusted == [ca.cert]
    assert key is not None
    assert isinstance(cert, x509.Certificate)
    cert.verify_directly_issued_by(trusted[0])
    assert chain == [ca.cert]


def test_itak_connection_package_is_flat_without_manifest(
    truststore: P12File, client: P12File
) -> None:
    files = unzip(
        connection_package(ENDPOINT, truststore, client, uid=UID, now=NOW, flavour="itak")
    )
    assert list(files) == ["config.pref", CA_FILE, CLIENT_FILE]
    assert files[CA_FILE] == truststore.data
    assert files[CLIENT_FILE] == client.data


def test_itak_pref_carries_both_per_connection_and_global_certificate_keys(
    truststore: P12File, client: P12File
) -> None:
    files = unzip(
        connection_package(ENDPOINT, truststore, client, uid=UID, now=NOW, flavour="itak")
    )
    pref = prefs(files["config.pref"])
    streams, app = pref["cot_streams"], pref["com.atakmap.app_preferences"]
    assert streams["connectString0"] == (STRING, "tak.example.org:8089:ssl")
    assert streams["caLocation0"] == app["caLocation"] == (STRING, f"cert/{CA_FILE}")
    assert streams["caPassword0"] == app["caPassword"] == (STRING, "trust-pw")
    assert (
        streams["certificateLocation0"]
        == app["certificateLocation"]
        == (STRING, f"cert/{CLIENT_FILE}")
    )
    assert streams["clientPassword0"] == app["clientPassword"] == (STRING, "client-pw")


@pytest.mark.parametrize("flavour", ["atak", "itak"])
def test_enrollment_package_has_no_client_certificate_and_asks_to_enrol(
    flavour: str, truststore: P12File
) -> None:
    data = enrollment_package(ENDPOINT, truststore, uid=UID, now=NOW, flavour=flavour)  # type: ignore[arg-type]
    files = unzip(data)
    folder = "certs/" if flavour == "atak" else ""
    expected = [f"{folder}config.pref", f"{folder}{CA_FILE}"]
    if flavour == "atak":
        expected.insert(0, "MANIFEST/manifest.xml")
        assert manifest(files["MANIFEST/manifest.xml"])[1] == expected[1:]
    assert list(files) == expected
    pref = prefs(files[f"{folder}config.pref"])
    streams = pref["cot_streams"]
    assert streams["enrollForCertificateWithTrust0"] == (BOOLEAN, "true")
    assert streams["useAuth0"] == (BOOLEAN, "true")
    assert streams["cacheCreds0"] == (STRING, "Cache credentials")
    assert streams["caLocation0"] == (STRING, f"cert/{CA_FILE}")
    assert streams["caPassword0"] == (STRING, "trust-pw")
    for absent in ("certificateLocation0", "clientPassword0", "username0", "password0"):
        assert absent not in streams
    assert "certificateLocation" not in pref["com.atakmap.app_preferences"]


def test_enrollment_package_can_cache_the_username_only(truststore: P12File) -> None:
    files = unzip(
        enrollment_package(ENDPOINT, truststore, uid=UID, now=NOW, cache_credentials=CACHE_USERNAME)
    )
    assert prefs(files["certs/config.pref"])["cot_streams"]["cacheCreds0"] == (
        STRING,
        "Cache username",
    )


def test_enrollment_package_refuses_an_unknown_cache_choice(truststore: P12File) -> None:
    with pytest.raises(ValueError, match="cacheCreds"):
        enrollment_package(ENDPOINT, truststore, uid=UID, now=NOW, cache_credentials="always")


def test_non_default_ports_are_written_and_default_ports_are_not(
    truststore: P12File, client: P12File
) -> None:
    endpoint = Endpoint(HOST, "Accord", stream_port=9089, api_port=9443, enrollment_port=9446)
    files = unzip(connection_package(endpoint, truststore, client, uid=UID, now=NOW))
    pref = prefs(files["certs/config.pref"])
    assert pref["cot_streams"]["connectString0"] == (STRING, "tak.example.org:9089:ssl")
    app = pref["com.atakmap.app_preferences"]
    assert app["apiSecureServerPort"] == (STRING, "9443")
    assert app["apiCertEnrollmentPort"] == (STRING, "9446")


def test_identity_settings_go_to_the_app_preferences(truststore: P12File, client: P12File) -> None:
    identity = Identity(callsign="ALICE-1", team="Cyan", role="Team Lead")
    files = unzip(
        connection_package(ENDPOINT, truststore, client, uid=UID, now=NOW, identity=identity)
    )
    app = prefs(files["certs/config.pref"])["com.atakmap.app_preferences"]
    assert app["locationCallsign"] == (STRING, "ALICE-1")
    assert app["locationTeam"] == (STRING, "Cyan")
    assert app["atakRoleType"] == (STRING, "Team Lead")


def test_non_ascii_text_survives_the_ascii_pref(truststore: P12File, client: P12File) -> None:
    identity = Identity(callsign="Zoë")
    endpoint = Endpoint(HOST, "Übung Nord")
    files = unzip(
        connection_package(endpoint, truststore, client, uid=UID, now=NOW, identity=identity)
    )
    raw = files["certs/config.pref"]
    raw.decode("ascii")  # every byte is ASCII; the rest are character references
    pref = prefs(raw)
    assert pref["cot_streams"]["description0"] == (STRING, "Übung Nord")
    assert pref["com.atakmap.app_preferences"]["locationCallsign"] == (STRING, "Zoë")


def test_every_entry_is_stamped_with_the_given_time(truststore: P12File, client: P12File) -> None:
    data = connection_package(ENDPOINT, truststore, client, uid=UID, now=NOW)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert {info.date_time for info in zf.infolist()} == {(2026, 5, 1, 12, 30, 10)}


@pytest.mark.parametrize("host", ["", "fe80::1", "tak example", "tak,example", "-tak.example"])
def test_hosts_that_break_a_connect_string_are_refused(host: str) -> None:
    with pytest.raises(ValueError, match="connect string"):
        Endpoint(host, "Accord")


def test_bad_ports_and_empty_description_are_refused() -> None:
    with pytest.raises(ValueError, match="stream_port"):
        Endpoint(HOST, "Accord", stream_port=0)
    with pytest.raises(ValueError, match="description"):
        Endpoint(HOST, "  ")


def test_p12_file_names_must_be_plain(truststore: P12File) -> None:
    with pytest.raises(ValueError, match="file name"):
        P12File("../ca.p12", truststore.data, "pw")
    with pytest.raises(ValueError, match="file name"):
        P12File("ca.pem", truststore.data, "pw")
    with pytest.raises(ValueError, match="password"):
        P12File("ca.p12", truststore.data, "")


def test_truststore_and_client_need_different_names(truststore: P12File) -> None:
    same = P12File(truststore.name, truststore.data, "pw")
    with pytest.raises(ValueError, match="different file names"):
        connection_package(ENDPOINT, truststore, same, uid=UID, now=NOW)


def test_unknown_flavour_is_refused(truststore: P12File, client: P12File) -> None:
    with pytest.raises(ValueError, match="flavour"):
        connection_package(ENDPOINT, truststore, client, uid=UID, now=NOW, flavour="wintak")  # type: ignore[arg-type]


def test_file_names_are_unique_per_host_and_user() -> None:
    assert truststore_filename("10.0.0.5") == "truststore-10.0.0.5.p12"
    assert client_filename("Bob Smith", "tak.example.org") == "Bob_Smith-tak.example.org.p12"
    assert truststore_filename("a.example") != truststore_filename("b.example")
