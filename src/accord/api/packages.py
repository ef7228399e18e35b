"""Data packages over the Marti API (reference tak-protocol §4.4-4.8 and §4.10).

What a client sends is stored as a content-addressed blob (:mod:`accord.store.blobs`) plus
metadata in the store; who may see a package is decided by groups, as for events: a package
carries the uploader's IN groups (or the subset it names) and a caller sees it when one of its
OUT groups is among them. A package the caller may not see answers exactly as one that does not
exist (404), on every endpoint.

- ``POST /Marti/sync/missionupload``: ATAK/commo's upload (multipart, part ``assetfile``);
  answers the content URL as text.
- ``POST /Marti/sync/upload``: iTAK's and the Data Sync plugin's upload (TAK Server's
  UploadServlet): raw body or multipart, metadata as query parameters (any case); answers the
  metadata as JSON.
- ``GET /Marti/sync/missionquery?hash=``: the content URL, or 404.
- ``GET|HEAD /Marti/sync/content?hash=|uid=`` with ``offset``/``length`` (ATAK resumes with
  ``offset``): the bytes, streamed.
- ``GET /Marti/sync/search`` and ``GET /Marti/api/sync/search``: metadata, TAK Server's
  servlet shape and API envelope.
- ``PUT /Marti/api/sync/metadata/{hash}/tool`` (or ``mimetype``): commo marks a package it
  sends to contacts ``private``.
- ``POST|DELETE /Marti/sync/delete?hash=`` and ``DELETE /Marti/api/files/{hash}``.

Bodies are never held whole: the multipart parser is fed as the bytes arrive and the file part
goes straight into a blob writer, limit enforced on the way. An upload is acknowledged only
after its blob is durable and its metadata committed, so a restart loses nothing that was
answered 200. Every refusal is a 4xx with ``{"error": "..."}`` naming what was wrong.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from accord.api.marti import Caller, authorised, envelope
from accord.domain.groups import Membership
from accord.store.blobs import BlobReader, Blobs, BlobTooLarge, BlobWriter, HashMismatch, is_hash
from accord.store.contract import Store, StoreError
from accord.store.records import Package, PackageQuery

log = logging.getLogger("accord.packages")

MULTIPART_SLACK_BYTES = 1024 * 1024  # form overhead allowed on top of the file itself
MAX_TEXT_BODY_BYTES = 4096  # a metadata PUT body
MAX_NAME_CHARS = 255
MAX_FIELD_CHARS = 256
DEFAULT_MIMETYPE = "application/x-zip-compressed"  # commo's, and missionupload's default
RAW_MIMETYPE = "application/octet-stream"
MISSION_PACKAGE_KEYWORD = "missionpackage"
FALLBACK_FILENAME = "EnterpriseSync.dat"  # TAK Server's ContentServlet default

_MIMETYPE = re.compile(r"[A-Za-z0-9][\w.+\-]*/[\w.+\-]+")
_TOKEN = re.compile(r"[\w.\-]{1,64}")  # tool values: "public", "private", plugin names
_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class PackageSettings:
    hostname: str  # for content URLs when the request's Host header is unusable
    max_bytes: int  # largest package accepted
    now_ms: Callable[[], int]  # wall clock, for submission times
    submitter: Callable[[Request], str] = field(default=lambda request: "")  # who, for humans


class Refused(Exception):
    """A request this API will not serve; becomes ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def _refusal(exc: Refused) -> Response:
    return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)


# -- query parameters (TAK Server matches most of them without regard to case) ----------------
def _values(request: Request, *names: str) -> list[str]:
    wanted = {n.lower() for n in names}
    return [v for k, v in request.query_params.multi_items() if k.lower() in wanted]


def _one(request: Request, *names: str) -> str | None:
    found = _values(request, *names)
    return found[0] if found else None


def _hash_value(text: str, what: str = "hash") -> str:
    value = text.strip().lower()
    if not is_hash(value):
        raise Refused(400, f"{what} must be a sha256: 64 hexadecimal digits")
    return value


def _required_hash(request: Request, *names: str) -> str:
    text = _one(request, *names)
    if text is None:
        raise Refused(400, f"the {names[0]} parameter is required")
    return _hash_value(text)


def _whole_number(request: Request, name: str) -> int | None:
    text = _one(request, name)
    if text is None or text == "":
        return None
    if not text.isdigit() or not text.isascii():
        raise Refused(400, f"{name} must be a whole number of bytes (0 or more), not {text!r}")
    return int(text)


def _text(value: str | None, what: str, limit: int = MAX_FIELD_CHARS) -> str:
    if value is None:
        return ""
    if len(value) > limit or _CONTROL.search(value):
        raise Refused(400, f"{what} must be at most {limit} characters with no control characters")
    return value


def _display_name(raw: str) -> str:
    """A file name to show and to offer for download: no directories, no control characters."""
    name = _CONTROL.sub("", raw.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    if name in ("", ".", ".."):
        raise Refused(400, f"filename {raw!r} names no file")
    return name[:MAX_NAME_CHARS]


def _mimetype(value: str | None, default: str) -> str:
    if value is None or value == "":
        return default
    value = value.strip()
    if len(value) > 127 or not _MIMETYPE.fullmatch(value):
        raise Refused(400, f"mimetype {value!r} is not a MIME type such as {DEFAULT_MIMETYPE}")
    return value


def _tool(value: str | None) -> str:
    if value is None or value == "":
        return "public"
    if not _TOKEN.fullmatch(value):
        raise Refused(400, "tool must be a word such as public or private (letters, digits, ._-)")
    return value


def _keywords(values: Iterable[str], default: tuple[str, ...]) -> tuple[str, ...]:
    found: list[str] = []
    for value in values:
        for word in value.split(","):
            word = _text(word.strip(), "a keyword", 64)
            if word and word not in found:
                found.append(word)
    return tuple(found) if found else default


def _coordinate(request: Request, name: str, bound: float) -> float | None:
    text = _one(request, name)
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise Refused(400, f"{name} must be a number of degrees, not {text!r}") from None
    if not -bound <= value <= bound:
        raise Refused(400, f"{name} must be between -{bound:g} and {bound:g}")
    return value


def _groups(request: Request, caller: Membership) -> tuple[str, ...]:
    """The groups a new package goes to: the caller's IN groups, or those it names of them."""
    named = {g.strip() for v in _values(request, "groups") for g in v.split(",") if g.strip()}
    if named:
        foreign = named - caller.inbound
        if foreign:
            raise Refused(403, f"you may not share into group(s) {', '.join(sorted(foreign))}")
        return tuple(sorted(named))
    if not caller.inbound:
        raise Refused(403, "your certificate sends into no group: nobody could see the package")
    return tuple(sorted(caller.inbound))


def _time_ms(request: Request, *names: str) -> int | None:
    text = _one(request, *names)
    if text is None or text == "":
        return None
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise Refused(
            400, f"{names[0]} must be an ISO 8601 time such as 2026-01-31T12:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def _visible(package: Package, caller: Membership) -> bool:
    return not caller.outbound.isdisjoint(package.groups)


def _content_url(request: Request, settings: PackageSettings, hash: str) -> str:
    """``<scheme>://<host>:<port>/Marti/sync/content?hash=`` as the caller reached us, 8444
    written as 8443 (TAK Server's MissionPackageQueryServlet.getBaseUrl)."""
    host, _, port_text = request.headers.get("host", "").rpartition(":")
    if not host or "]" in port_text:  # no port given ("example.org", "[::1]")
        host, port_text = request.headers.get("host", ""), ""
    if not _HOST.fullmatch(host):
        host = settings.hostname
    server = request.scope.get("server") or ("", 0)
    port = int(port_text) if port_text.isdigit() and 0 < int(port_text) < 65536 else server[1]
    if port == 8444:
        port = 8443
    return f"{request.url.scheme}://{host}:{port}/Marti/sync/content?hash={hash}"


# -- what a package looks like to clients ----------------------------------------------------
def _iso(ms: int) -> str:
    # TAK Server's COT_DATE_FORMAT; ATAK parses yyyy-MM-dd'T'HH:mm:ss.SSS'Z'.
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def primary_key(hash: str) -> int:
    """A stable non-negative int for TAK Server's ``PrimaryKey``, which ATAK requires (the hash
    is our key; 28 bits of it)."""
    return int(hash[:7], 16)


def metadata(package: Package) -> dict[str, Any]:
    """TAK Server's Metadata JSON: scalar values as strings, Keywords and Groups as lists."""
    out: dict[str, Any] = {
        "UID": package.hash,
        "Name": package.name,
        "Hash": package.hash,
        "PrimaryKey": str(primary_key(package.hash)),
        "SubmissionDateTime": _iso(package.submitted_ms),
        "SubmissionUser": package.submitter,
        "CreatorUid": package.creator_uid,
        "Keywords": list(package.keywords),
        "MIMEType": package.mimetype,
        "Size": str(package.size),
        "Tool": package.tool,
        "Groups": list(package.groups),
        "DownloadPath": package.name,
    }
    if package.lat is not None and package.lon is not None:
        out["Latitude"], out["Longitude"] = str(package.lat), str(package.lon)
    if package.expiration_ms is not None:
        out["EXPIRATION"] = str(package.expiration_ms // 1000)
    return out


def resource(package: Package) -> dict[str, Any]:
    """TAK Server's ``Resource`` (the /api/sync/search variant): typed values, camelCase."""
    out: dict[str, Any] = {
        "filename": package.name,
        "keywords": list(package.keywords),
        "mimeType": package.mimetype,
        "name": package.name,
        "submissionTime": _iso(package.submitted_ms),
        "submitter": package.submitter,
        "uid": package.hash,
        "hash": package.hash,
        "size": package.size,
        "creatorUid": package.creator_uid,
        "tool": package.tool,
        "groups": list(package.groups),
    }
    if package.lat is not None and package.lon is not None:
        out["latitude"], out["longitude"] = package.lat, package.lon
    if package.expiration_ms is not None:
        out["expiration"] = package.expiration_ms // 1000
    return out


def _disposition(name: str) -> str:
    """``inline`` with an ASCII ``filename`` and, when needed, the exact UTF-8 ``filename*``."""
    plain = "".join(c if c.isascii() and c not in '"\\' else "_" for c in name) or FALLBACK_FILENAME
    header = f'inline; filename="{plain}"'
    if plain != name:
        header += f"; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"
    return header


# -- the upload body -------------------------------------------------------------------------
@dataclass
class _Upload:
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
        self.upload = _Upload()
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
) -> _Upload:
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


def _framing(request: Request, max_bytes: int, *, raw_allowed: bool) -> bytes | None:
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


async def _receive(
    request: Request, writer: BlobWriter, max_bytes: int, boundary: bytes | None
) -> _Upload:
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
    return _Upload(content_type=kind if _MIMETYPE.fullmatch(kind) else None)


# -- download --------------------------------------------------------------------------------
class _BlobResponse(Response):
    """Streams ``length`` bytes of an open blob from ``offset``; stops when the client goes
    away (uvicorn drops what is sent after that, so reading on would only waste the disk) and
    always closes the blob."""

    def __init__(
        self,
        reader: BlobReader,
        offset: int,
        length: int,
        status_code: int,
        headers: dict[str, str],
        head: bool,
    ) -> None:
        self.reader, self.offset, self.length, self.head = reader, offset, length, head
        self.status_code = status_code
        self.background = None
        self.init_headers({**headers, "content-length": str(length)})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            streaming = asyncio.ensure_future(self._stream(send))
            leaving = asyncio.ensure_future(_disconnect(receive))
            try:
                await asyncio.wait((streaming, leaving), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (streaming, leaving):
                    task.cancel()
                await asyncio.gather(streaming, leaving, return_exceptions=True)
            error = None if streaming.cancelled() else streaming.exception()
            if isinstance(error, OSError):
                raise ClientDisconnect() from error
            if error is not None:
                raise error
        finally:
            await self.reader.close()

    async def _stream(self, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        if not self.head:
            async for chunk in self.reader.chunks(self.offset, self.length):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


# -- the routes ------------------------------------------------------------------------------
Handler = Callable[[Request, Membership], Awaitable[Response]]


def package_routes(
    store: Store, blobs: Blobs, caller: Caller, settings: PackageSettings
) -> list[Route]:
    """The data package endpoints, for :func:`accord.api.marti.build_app`'s ``extra``."""
    # Publishing a blob with its metadata, and deleting the two, are serialised: a delete may
    # not fall between an upload's rename and its metadata commit (a package without bytes).
    commit = asyncio.Lock()

    def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request, who: Membership) -> Response:
            try:
                return await handler(request, who)
            except Refused as exc:
                return _refusal(exc)
            except StoreError as exc:
                log.error("package store failed: %s", exc)
                return JSONResponse({"error": f"the database failed: {exc}"}, status_code=503)

        return authorised(caller, guarded)

    async def find(hash: str, who: Membership) -> Package:
        package = await store.package(hash)
        if package is None or not _visible(package, who):
            raise Refused(404, f"no package with hash {hash}")
        return package

    async def store_upload(
        request: Request,
        expected: str | None,
        describe: Callable[[str, int, _Upload], Package],
        raw_allowed: bool,
    ) -> Package:
        """Receive the body into a blob, then publish it and commit its metadata."""
        try:
            boundary = _framing(request, settings.max_bytes, raw_allowed=raw_allowed)
            async with await blobs.writer(settings.max_bytes) as writer:
                upload = await _receive(request, writer, settings.max_bytes, boundary)
                digest = await writer.seal(expected)
                package = describe(digest, writer.size, upload)
                async with commit:
                    await writer.publish()
                    stored = await store.add_package(package)
        except BlobTooLarge:
            raise Refused(
                413, f"the package is larger than this server's limit of {settings.max_bytes} bytes"
            ) from None
        except HashMismatch as exc:
            raise Refused(
                400,
                f"the bytes received hash to {exc.actual}, not to the hash given {exc.expected}",
            ) from None
        except ClientDisconnect:
            raise Refused(400, "the client went away before the upload was complete") from None
        except OSError as exc:
            log.error("cannot store a package: %s", exc)
            raise Refused(507, f"the server cannot store the package: {exc.strerror}") from None
        groups = ",".join(stored.groups)
        log.info(
            "package %s (%s, %d bytes) stored for %s", stored.hash, stored.name, stored.size, groups
        )
        return stored

    async def mission_upload(request: Request, who: Membership) -> Response:
        filename = _one(request, "filename")
        if filename is None:
            raise Refused(400, "the filename parameter is required")
        name = _display_name(filename)
        expected = _one(request, "hash")
        expected = _hash_value(expected) if expected else None
        mimetype = _mimetype(_one(request, "mimetype"), DEFAULT_MIMETYPE)
        keywords = _keywords(_values(request, "keyword", "keywords"), (MISSION_PACKAGE_KEYWORD,))
        tool = _tool(_one(request, "tool"))
        creator = _text(_one(request, "creatorUid"), "creatorUid")
        groups = _groups(request, who)

        def describe(digest: str, size: int, upload: _Upload) -> Package:
            return Package(
                hash=digest,
                name=name,
                size=size,
                mimetype=mimetype,
                keywords=keywords,
                tool=tool,
                groups=groups,
                creator_uid=creator,
                submitter=settings.submitter(request),
                submitted_ms=settings.now_ms(),
            )

        stored = await store_upload(request, expected, describe, raw_allowed=False)
        return PlainTextResponse(_content_url(request, settings, stored.hash))

    async def sync_upload(request: Request, who: Membership) -> Response:
        named = _one(request, "name")
        expected = _one(request, "hash")
        expected = _hash_value(expected) if expected else None
        asked_type = _mimetype(_one(request, "MIMEType", "MIME", "mimetype"), RAW_MIMETYPE)
        keywords = _keywords(_values(request, "keywords", "keyword"), ())
        tool = _tool(_one(request, "tool"))
        creator = _text(_one(request, "CreatorUid"), "CreatorUid")
        lat, lon = _coordinate(request, "Latitude", 90), _coordinate(request, "Longitude", 180)
        groups = _groups(request, who)

        def describe(digest: str, size: int, upload: _Upload) -> Package:
            name = named or upload.filename
            if not name:
                raise Refused(400, "the name parameter is required (or a file name in the form)")
            return Package(
                hash=digest,
                name=_display_name(name),
                size=size,
                # TAK Server's UploadServlet: the body's own type wins over the parameter.
                mimetype=upload.content_type or asked_type,
                keywords=keywords,
                tool=tool,
                groups=groups,
                creator_uid=creator,
                submitter=settings.submitter(request),
                submitted_ms=settings.now_ms(),
                lat=lat if lon is not None else None,
                lon=lon if lat is not None else None,
            )

        stored = await store_upload(request, expected, describe, raw_allowed=True)
        return JSONResponse(metadata(stored), media_type="text/json")

    async def mission_query(request: Request, who: Membership) -> Response:
        package = await find(_required_hash(request, "hash"), who)
        return PlainTextResponse(_content_url(request, settings, package.hash))

    async def content(request: Request, who: Membership) -> Response:
        text = _one(request, "hash") or _one(request, "uid")
        if text is None:
            raise Refused(400, "the hash (or uid) parameter is required")
        package = await find(_hash_value(text), who)
        offset = _whole_number(request, "offset") or 0
        length = _whole_number(request, "length")
        reader = await blobs.reader(package.hash)
        if reader is None:
            log.error("package %s has metadata but no bytes", package.hash)
            raise Refused(404, f"no package with hash {package.hash}")
        size = reader.size
        if offset > size:
            await reader.close()
            raise Refused(
                416,
                f"offset {offset} is past the end of the package ({size} bytes)",
                {"content-range": f"bytes */{size}"},
            )
        count = size - offset if not length else min(length, size - offset)
        headers = {
            "content-type": package.mimetype,
            "content-disposition": _disposition(package.name),
        }
        status = 200
        if length and offset + length < size:  # TAK Server: 206 only for a bounded read
            status = 206
            headers["content-range"] = f"bytes {offset}-{offset + count - 1}/{size}"
        return _BlobResponse(reader, offset, count, status, headers, request.method == "HEAD")

    async def search(request: Request, who: Membership) -> list[Package]:
        names = {n for n in _values(request, "filename", "name") if n}
        if len(names) > 1:
            return []
        hashes = {h.strip().lower() for h in _values(request, "uid", "hash") if h.strip()}
        wanted_keywords = _keywords(_values(request, "keywords", "keyword"), ())
        query = PackageQuery(
            visible_to=who.outbound,
            name=next(iter(names), None),
            keyword=wanted_keywords[0] if wanted_keywords else None,
            tool=_one(request, "tool") or None,
            mimetype=_one(request, "mimetype", "mime") or None,
            creator_uid=_one(request, "creatorUid") or None,
            since_ms=_time_ms(request, "startTime", "SubmissionDateTime"),
            until_ms=_time_ms(request, "stopTime", "endTime"),
        )
        found = await store.packages(query)
        return [
            p
            for p in found
            if (not hashes or p.hash in hashes) and set(wanted_keywords) <= set(p.keywords)
        ]

    async def sync_search(request: Request, who: Membership) -> Response:
        rows = [metadata(p) for p in await search(request, who)]
        return JSONResponse({"resultCount": len(rows), "results": rows}, media_type="text/json")

    async def api_search(request: Request, who: Membership) -> Response:
        rows = [resource(p) for p in await search(request, who)]
        return JSONResponse(envelope("Resource", rows))

    async def set_metadata(request: Request, who: Membership) -> Response:
        hash = _hash_value(request.path_params["hash"])
        what = request.path_params["field"].lower()
        if what not in ("tool", "mimetype"):
            raise Refused(400, f"only tool and mimetype can be set this way, not {what!r}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_TEXT_BODY_BYTES:
                raise Refused(413, f"the {what} value is longer than {MAX_TEXT_BODY_BYTES} bytes")
        try:
            value = body.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise Refused(400, f"the {what} value is not UTF-8 text") from None
        if not value:
            raise Refused(400, f"the body must be the new {what}, e.g. private")
        await find(hash, who)
        if what == "tool":
            changed = await store.update_package(hash, tool=_tool(value))
        else:
            changed = await store.update_package(hash, mimetype=_mimetype(value, ""))
        if not changed:  # deleted meanwhile
            raise Refused(404, f"no package with hash {hash}")
        return Response(status_code=200)

    async def delete(request: Request, who: Membership, hash: str) -> Response:
        package = await find(hash, who)
        foreign = set(package.groups) - (who.inbound | who.outbound)
        if foreign:
            raise Refused(
                403,
                "the package is also shared in groups you are not in "
                f"({', '.join(sorted(foreign))}); an operator must delete it",
            )
        async with commit:
            await store.delete_package(hash)
            await blobs.delete(hash)
        log.info("package %s (%s) deleted", hash, package.name)
        return JSONResponse({"deleted": hash})

    async def sync_delete(request: Request, who: Membership) -> Response:
        return await delete(request, who, _required_hash(request, "hash"))

    async def files_delete(request: Request, who: Membership) -> Response:
        return await delete(request, who, _hash_value(request.path_params["hash"]))

    return [
        Route("/Marti/sync/missionupload", endpoint(mission_upload), methods=["POST"]),
        Route("/Marti/sync/upload", endpoint(sync_upload), methods=["POST"]),
        Route("/Marti/sync/missionquery", endpoint(mission_query), methods=["GET"]),
        Route("/Marti/sync/content", endpoint(content), methods=["GET", "HEAD"]),
        Route("/Marti/sync/search", endpoint(sync_search), methods=["GET"]),
        Route("/Marti/api/sync/search", endpoint(api_search), methods=["GET"]),
        Route("/Marti/api/sync/metadata/{hash}/{field}", endpoint(set_metadata), methods=["PUT"]),
        Route("/Marti/sync/delete", endpoint(sync_delete), methods=["POST", "DELETE"]),
        Route("/Marti/api/files/{hash}", endpoint(files_delete), methods=["DELETE"]),
    ]
