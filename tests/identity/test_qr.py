"""Onboarding QR codes: exact payloads, and both renderings decode back with a real decoder."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

import pytest
import zxingcpp
from PIL import Image

from accord.identity.package import Endpoint
from accord.identity.qr import encode_png, encode_text, enrollment_uri, quick_connect_csv

ENDPOINT = Endpoint("tak.example.org", "Accord Ops")


def decode_image(image: Image.Image) -> list[str]:
    found = zxingcpp.read_barcodes(
        image, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    )
    return [r.text for r in found]


def text_to_image(text: str, *, dark_background: bool, pixels: int = 6) -> Image.Image:
    """Paint terminal half blocks the way a terminal shows them: glyph = foreground colour."""
    fg, bg = (255, 0) if dark_background else (0, 255)
    lines = text.rstrip("\n").split("\n")
    width = len(lines[0])
    assert all(len(line) == width for line in lines)
    image = Image.new("L", (width * pixels, len(lines) * 2 * pixels), bg)
    for y, line in enumerate(lines):
        for x, ch in enumerate(line):
            top = ch in "\u2588\u2580"
            bottom = ch in "\u2588\u2584"
            assert ch in "\u2588\u2580\u2584 "
            for half, on in ((0, top), (1, bottom)):
                if on:
                    box = (
                        x * pixels,
                        (2 * y + half) * pixels,
                        (x + 1) * pixels,
                        (2 * y + half + 1) * pixels,
                    )
                    image.paste(fg, box)
    return image


def test_enrollment_uri_is_the_atak_form() -> None:
    assert (
        enrollment_uri(ENDPOINT, "alice", "one-time-token")
        == "tak://com.atakmap.app/enroll?host=tak.example.org&username=alice&token=one-time-token"
    )


def test_enrollment_uri_adds_a_non_default_streaming_port_to_host() -> None:
    endpoint = Endpoint("10.0.0.5", "Accord", stream_port=9089)
    uri = enrollment_uri(endpoint, "bob", "t")
    assert uri == "tak://com.atakmap.app/enroll?host=10.0.0.5:9089&username=bob&token=t"


def test_enrollment_uri_percent_encodes_and_round_trips_awkward_credentials() -> None:
    username, token = "bob smith+ops", "p&ss=w/rd?#%ü"
    uri = enrollment_uri(ENDPOINT, username, token)
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc, parts.path) == ("tak", "com.atakmap.app", "/enroll")
    assert " " not in uri
    assert "+" not in parts.query  # Android's getQueryParameter would not turn '+' into ' '
    query = parse_qs(parts.query, strict_parsing=True)
    assert query == {"host": ["tak.example.org"], "username": [username], "token": [token]}


def test_enrollment_uri_needs_credentials() -> None:
    with pytest.raises(ValueError, match="user name and a token"):
        enrollment_uri(ENDPOINT, "", "t")
    with pytest.raises(ValueError, match="user name and a token"):
        enrollment_uri(ENDPOINT, "alice", "")


def test_quick_connect_csv_is_the_itak_form() -> None:
    assert quick_connect_csv(ENDPOINT) == "Accord Ops,tak.example.org,8089,SSL"
    assert (
        quick_connect_csv(Endpoint("10.0.0.5", "Field", stream_port=9089))
        == "Field,10.0.0.5,9089,SSL"
    )


@pytest.mark.parametrize("description", ["Ops, North", "two\nlines"])
def test_quick_connect_refuses_descriptions_that_break_the_csv(description: str) -> None:
    with pytest.raises(ValueError, match="comma"):
        quick_connect_csv(Endpoint("tak.example.org", description))


@pytest.mark.parametrize(
    "payload",
    [
        "tak://com.atakmap.app/enroll?host=tak.example.org&username=alice&token=one-time-token",
        "Accord Ops,tak.example.org,8089,SSL",
    ],
)
def test_png_decodes_to_the_exact_payload(payload: str) -> None:
    png = encode_png(payload)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert decode_image(Image.open(io.BytesIO(png))) == [payload]


def test_png_of_a_long_enrollment_uri_decodes() -> None:
    payload = enrollment_uri(ENDPOINT, "a-rather-long-user.name", "Q" * 64)
    assert decode_image(Image.open(io.BytesIO(encode_png(payload, scale=4)))) == [payload]


@pytest.mark.parametrize("dark_background", [True, False])
def test_terminal_text_decodes_to_the_exact_payload(dark_background: bool) -> None:
    payload = enrollment_uri(ENDPOINT, "alice", "one-time-token")
    text = encode_text(payload, dark_background=dark_background)
    image = text_to_image(text, dark_background=dark_background)
    assert decode_image(image) == [payload]


def test_terminal_text_uses_two_module_rows_per_line() -> None:
    text = encode_text("Accord Ops,tak.example.org,8089,SSL", border=4)
    lines = text.rstrip("\n").split("\n")
    width = len(lines[0])
    assert (width - 8) % 4 == 1  # a QR symbol is 17 + 4 * version modules wide
    assert len(lines) == (width + 1) // 2


def test_empty_payload_is_refused() -> None:
    with pytest.raises(ValueError, match="payload"):
        encode_png("")
