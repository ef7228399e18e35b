"""Receiving upload bodies: split anywhere, the same file comes out; cut short, nothing does."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.types import Message

from accord.api.packages.fields import Refused
from accord.api.packages.upload import Upload, framing, receive
from accord.store.blobs import Blobs, BlobTooLarge

FILE = bytes(range(256)) + b"\r\n--not-the-boundary\r\n" + b"PK" * 40
FORM = (
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="note"\r\n\r\n'
    b"a field before the file\r\n"
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="assetfile"; filename="m\xc3\xa4p.zip"\r\n'
    b"Content-Type: application/x-zip-compressed\r\n\r\n" + FILE + b"\r\n"
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="resource"; filename="second.zip"\r\n\r\n'
    b"ignored: only the first file part counts\r\n"
    b"--XyZ--\r\n"
)


def request(chunks: list[bytes], content_type: str) -> Request:
    messages: list[Message] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]

    async def next_message() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/Marti/sync/missionupload",
        "query_string": b"",
        "headers": [(b"content-type", content_type.encode())],
    }
    return Request(scope, next_message)


async def received(blobs: Blobs, chunks: list[bytes], content_type: str) -> tuple[str, Upload]:
    req = request(chunks, content_type)
    boundary = framing(req, 10_000, raw_allowed=True)
    async with await blobs.writer(10_000) as writer:
        upload = await receive(req, writer, 10_000, boundary)
        return await writer.finish(), upload


async def test_a_form_split_at_every_byte_gives_the_same_file(tmp_path: Path) -> None:
    blobs = await Blobs.open(tmp_path)
    for cut in range(len(FORM) + 1):
        digest, upload = await received(
            blobs, [FORM[:cut], FORM[cut:]], "multipart/form-data; boundary=XyZ"
        )
        assert digest == hashlib.sha256(FILE).hexdigest(), cut
        assert upload == Upload("mäp.zip", "application/x-zip-compressed"), cut
    one_byte_each = [FORM[i : i + 1] for i in range(len(FORM))]
    digest, _ = await received(blobs, one_byte_each, "multipart/form-data; boundary=XyZ")
    assert digest == hashlib.sha256(FILE).hexdigest()


async def test_a_form_cut_anywhere_stores_nothing(tmp_path: Path) -> None:
    blobs = await Blobs.open(tmp_path)
    complete = len(FORM) - len(b"\r\n")  # "--XyZ--" ends a form; the CRLF after it is optional
    for cut in range(complete):
        with pytest.raises(Refused) as refused:
            await received(blobs, [FORM[:cut]], "multipart/form-data; boundary=XyZ")
        assert refused.value.status == 400, cut
    assert await blobs.hashes() == []
    assert os.listdir(tmp_path) == []


async def test_a_raw_body_keeps_its_content_type(tmp_path: Path) -> None:
    blobs = await Blobs.open(tmp_path)
    digest, upload = await received(blobs, [FILE[:100], FILE[100:]], "image/jpeg; q=1")
    assert (digest, upload) == (hashlib.sha256(FILE).hexdigest(), Upload(None, "image/jpeg"))


async def test_a_body_past_the_limit_is_refused_while_it_streams(tmp_path: Path) -> None:
    blobs = await Blobs.open(tmp_path)
    with pytest.raises(BlobTooLarge):
        await received(blobs, [b"x" * 6000, b"x" * 6000], "application/zip")
    assert os.listdir(tmp_path) == []
