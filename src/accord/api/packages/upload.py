"""Receiving an upload's body: the file streams into a blob writer as it arrives, from a
multipart form (python-multipart's push parser) or from a raw body. Nothing is held whole."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from accord.api.packages.fields import MIMETYPE, Refused
from accord.store.blobs import BlobTooLarge, BlobWriter

MULTIPART_SLACK_BYTES = 1024 * 1024  # form overhead allowed on top of the file itself


@dataclass
class Upload:
    """What the body carried besides the file bytes."""

    filename: str | None = None  # of the file part
    content_type: str | None = None  # of the file part, or of a raw body


class _FilePart:
    """Multipart parser callbacks: keeps the bytes of the file part (``assetfile``, browsers'
    ``resource``, else the first part with a filename) until the caller takes them."""

    def __init__(self) -> None:
        self.pending: list[bytes] = []
        self.found = False
        self.ended = False  # the closing boundary was seen
        self.upload = Upload()
        self._in_file = False
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._in_file = False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.strip().lower()] = self._value.strip()
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        disposition = self._headers.get(b"content-disposition", b"").decode("latin-1")
        _, params = parse_options_header(disposition)
        name = params.get(b"name", b"")
        if self.found or not (name in (b"assetfile", b"resource") or b"filename" in params):
            return
        self.found = self._in_file = True
        if b"filename" in params:
            self.upload.filename = params[b"filename"].decode("utf-8", "replace")
        content_type = self._headers.get(b"content-type")
        if content_type:
            self.upload.content_type = content_type.decode("latin-1").split(";")[0].strip()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.pending.append(data[start:end])

    def _part_end(self) -> None:
        self._in_file = False

    def _end(self) -> None:
        self.ended = True


def _declared_length(request: Request) -> int | None:
    text = request.headers.get("content-length")
    return int(text) if text is not None and text.isdigit() else None


async def _receive_multipart(
    request: Request, writer: BlobWriter, boundary: bytes, limit: int
) -> Upload:
    part = _FilePart()
    try:
        parser = MultipartParser(boundary, part.callbacks())
    except ValueError as exc:
        raise Refused(400, f"unusable multipart boundary: {exc}") from None
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise BlobTooLarge(limit)
        try:
            parser.write(chunk)
        except MultipartParseError as exc:
            raise Refused(400, f"the multipart body is malformed: {exc}") from None
        for data in part.pending:
            await writer.write(data)
        part.pending.clear()
    if not part.ended:
        raise Refused(400, "the multipart body ended before its closing boundary: upload cut off")
    if not part.found:
        raise Refused(400, "no file in the form: send it as the part named assetfile")
    if writer.size == 0:
        raise Refused(400, "the file in the form is empty")
    return part.upload


def framing(request: Request, max_bytes: int, *, raw_allowed: bool) -> bytes | None:
    """Check the body's type and declared length before reading any of it: the multipart
    boundary, or None for a raw body (the file itself)."""
    kind, params = parse_options_header(request.headers.get("content-type"))
    multipart = kind == b"multipart/form-data"
    if not multipart and not raw_allowed:
        raise Refused(400, "a package upload must be multipart/form-data, file part assetfile")
    declared = _declared_length(request)
    if declared is not None and declared > max_bytes + (MULTIPART_SLACK_BYTES if multipart else 0):
        raise BlobTooLarge(max_bytes)
    if not multipart:
        return None
    boundary = params.get(b"boundary")
    if not boundary:
        raise Refused(400, "multipart/form-data without a boundary parameter")
    return boundary


async def receive(
    request: Request, writer: BlobWriter, max_bytes: int, boundary: bytes | None
) -> Upload:
    """Stream the body's file into ``writer``; Refused or BlobTooLarge when it cannot be."""
    if boundary is not None:
        return await _receive_multipart(
            request, writer, boundary, max_bytes + MULTIPART_SLACK_BYTES
        )
    async for chunk in request.stream():
        await writer.write(chunk)
    if writer.size == 0:
        raise Refused(400, "the request body is empty: send the file as the body")
    kind = parse_options_header(request.headers.get("content-type"))[0].decode("latin-1")
    return Upload(content_type=kind if MIMETYPE.fullmatch(kind) else None)
