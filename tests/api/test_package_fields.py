"""Reading what a package request carries: pure functions over a request's scope."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from accord.api.packages import fields
from accord.api.packages.views import iso, primary_key

HASH = "ab" * 32


def request(host: str | None, query: str = "", port: int = 8443) -> Request:
    headers = [(b"host", host.encode())] if host is not None else []
    return Request(
        {
            "type": "http",
            "scheme": "https",
            "method": "GET",
            "path": "/Marti/sync/missionquery",
            "query_string": query.encode(),
            "headers": headers,
            "server": ("10.0.0.5", port),
        }
    )


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("tak.example.org:8443", 8443, "https://tak.example.org:8443"),
        ("tak.example.org:8444", 8444, "https://tak.example.org:8443"),  # TAK Server's rewrite
        ("tak.example.org", 8443, "https://tak.example.org:8443"),  # no port: the one we serve
        ("[fd00::5]:9443", 9443, "https://[fd00::5]:9443"),
        ("[fd00::5]", 8443, "https://[fd00::5]:8443"),
        ("evil.org/x?y=:8443", 8443, "https://accord.local:8443"),  # not a host name
        ("", 8443, "https://accord.local:8443"),
        (None, 8443, "https://accord.local:8443"),
        ("tak:99999", 8443, "https://tak:8443"),
    ],
)
def test_the_content_url_names_the_host_the_caller_used(
    host: str | None, port: int, url: str
) -> None:
    got = fields.content_url(request(host, port=port), "accord.local", HASH)
    assert got == f"{url}/Marti/sync/content?hash={HASH}"


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("report.zip", "report.zip"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\Desktop\\map.kmz", "map.kmz"),
        ("bad\x00name\x1f.zip", "badname.zip"),
        ("  spaced.zip  ", "spaced.zip"),
        ("x" * 300, "x" * 255),
    ],
)
def test_a_display_name_keeps_only_the_file_name(raw: str, name: str) -> None:
    assert fields.display_name(raw) == name


@pytest.mark.parametrize("raw", ["", "/", "..", "a/..", "\\\\", "dir/"])
def test_a_name_without_a_file_is_refused(raw: str) -> None:
    with pytest.raises(fields.Refused, match="names no file"):
        fields.display_name(raw)


def test_parameters_are_found_in_any_case_and_keywords_once_each() -> None:
    got = request("h:1", "Keywords=a,b&keyword=b&KEYWORDS=c,,&Hash=" + HASH.upper())
    assert fields.keywords(fields.values(got, "keywords", "keyword"), ()) == ("a", "b", "c")
    assert fields.required_hash(got, "hash") == HASH
    assert fields.keywords([], ("missionpackage",)) == ("missionpackage",)


def test_times_and_keys_are_what_atak_parses() -> None:
    assert iso(1_780_000_000_007) == "2026-05-28T20:26:40.007Z"  # yyyy-MM-dd'T'HH:mm:ss.SSS'Z'
    assert 0 <= primary_key("f" * 64) < 2**31  # a Java int, >= 0
