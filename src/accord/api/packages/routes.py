"""The data package endpoints and the order of their effects (see the package docstring)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from accord.api.marti import AdminCheck, Caller, authorised, envelope, nobody
from accord.api.packages import fields, views
from accord.api.packages.download import BlobResponse, disposition
from accord.api.packages.fields import Refused
from accord.api.packages.files import file_routes
from accord.api.packages.upload import Upload, framing, receive
from accord.domain.groups import Membership
from accord.store.blobs import Blobs, BlobTooLarge, HashMismatch
from accord.store.contract import PackageStore, StoreError
from accord.store.records import Package, PackageQuery

log = logging.getLogger("accord.packages")

MAX_TEXT_BODY_BYTES = 4096  # a metadata PUT body


@dataclass(frozen=True)
class PackageSettings:
    hostname: str  # for content URLs when the request's Host header is unusable
    max_bytes: int  # largest package accepted
    now_ms: Callable[[], int]  # wall clock, for submission times
    submitter: Callable[[Request], str] = field(default=lambda request: "")  # who, for humans
    admin: AdminCheck = nobody  # an administrator deletes any package (DELETE /api/files)


Handler = Callable[[Request, Membership], Awaitable[Response]]


def package_routes(
    store: PackageStore, blobs: Blobs, caller: Caller, settings: PackageSettings
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
                return fields.refusal(exc)
            except StoreError as exc:
                log.error("package store failed: %s", exc)
                return JSONResponse({"error": f"the database failed: {exc}"}, status_code=503)

        return authorised(caller, guarded)

    async def find(hash: str, who: Membership) -> Package:
        package = await store.package(hash)
        if package is None or not fields.visible(package, who):
            raise Refused(404, f"no package with hash {hash}")
        return package

    async def store_upload(
        request: Request,
        expected: str | None,
        describe: Callable[[str, int, Upload], Package],
        raw_allowed: bool,
    ) -> Package:
        """Receive the body into a blob, then publish it and commit its metadata."""
        try:
            boundary = framing(request, settings.max_bytes, raw_allowed=raw_allowed)
            async with await blobs.writer(settings.max_bytes) as writer:
                upload = await receive(request, writer, settings.max_bytes, boundary)
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
        filename = fields.one(request, "filename")
        if filename is None:
            raise Refused(400, "the filename parameter is required")
        name = fields.display_name(filename)
        expected = fields.one(request, "hash")
        expected = fields.hash_value(expected) if expected else None
        mimetype = fields.mimetype(fields.one(request, "mimetype"), fields.DEFAULT_MIMETYPE)
        keywords = fields.keywords(
            fields.values(request, "keyword", "keywords"), (fields.MISSION_PACKAGE_KEYWORD,)
        )
        tool = fields.tool(fields.one(request, "tool"))
        creator = fields.short_text(fields.one(request, "creatorUid"), "creatorUid")
        groups = fields.groups_for(request, who)

        def describe(digest: str, size: int, upload: Upload) -> Package:
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
        return PlainTextResponse(fields.content_url(request, settings.hostname, stored.hash))

    async def sync_upload(request: Request, who: Membership) -> Response:
        named = fields.one(request, "name")
        expected = fields.one(request, "hash")
        expected = fields.hash_value(expected) if expected else None
        asked_type = fields.mimetype(
            fields.one(request, "MIMEType", "MIME", "mimetype"), fields.RAW_MIMETYPE
        )
        keywords = fields.keywords(fields.values(request, "keywords", "keyword"), ())
        tool = fields.tool(fields.one(request, "tool"))
        creator = fields.short_text(fields.one(request, "CreatorUid"), "CreatorUid")
        lat, lon = (
            fields.coordinate(request, "Latitude", 90),
            fields.coordinate(request, "Longitude", 180),
        )
        groups = fields.groups_for(request, who)

        def describe(digest: str, size: int, upload: Upload) -> Package:
            name = named or upload.filename
            if not name:
                raise Refused(400, "the name parameter is required (or a file name in the form)")
            return Package(
                hash=digest,
                name=fields.display_name(name),
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
        return JSONResponse(views.metadata(stored), media_type="text/json")

    async def mission_query(request: Request, who: Membership) -> Response:
        package = await find(fields.required_hash(request, "hash"), who)
        return PlainTextResponse(fields.content_url(request, settings.hostname, package.hash))

    async def content(request: Request, who: Membership) -> Response:
        text = fields.one(request, "hash") or fields.one(request, "uid")
        if text is None:
            raise Refused(400, "the hash (or uid) parameter is required")
        package = await find(fields.hash_value(text), who)
        offset = fields.whole_number(request, "offset") or 0
        length = fields.whole_number(request, "length")
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
            "content-disposition": disposition(package.name),
        }
        status = 200
        if length and offset + length < size:  # TAK Server: 206 only for a bounded read
            status = 206
            headers["content-range"] = f"bytes {offset}-{offset + count - 1}/{size}"
        return BlobResponse(reader, offset, count, status, headers, request.method == "HEAD")

    async def search(request: Request, who: Membership) -> list[Package]:
        names = {n for n in fields.values(request, "filename", "name") if n}
        if len(names) > 1:
            return []
        hashes = {h.strip().lower() for h in fields.values(request, "uid", "hash") if h.strip()}
        wanted_keywords = fields.keywords(fields.values(request, "keywords", "keyword"), ())
        query = PackageQuery(
            visible_to=who.outbound,
            name=next(iter(names), None),
            keyword=wanted_keywords[0] if wanted_keywords else None,
            tool=fields.one(request, "tool") or None,
            mimetype=fields.one(request, "mimetype", "mime") or None,
            creator_uid=fields.one(request, "creatorUid") or None,
            since_ms=fields.time_ms(request, "startTime", "SubmissionDateTime"),
            until_ms=fields.time_ms(request, "stopTime", "endTime"),
        )
        found = await store.packages(query)
        return [
            p
            for p in found
            if (not hashes or p.hash in hashes) and set(wanted_keywords) <= set(p.keywords)
        ]

    async def sync_search(request: Request, who: Membership) -> Response:
        rows = [views.metadata(p) for p in await search(request, who)]
        return JSONResponse({"resultCount": len(rows), "results": rows}, media_type="text/json")

    async def api_search(request: Request, who: Membership) -> Response:
        rows = [views.resource(p) for p in await search(request, who)]
        return JSONResponse(envelope("Resource", rows))

    async def set_metadata(request: Request, who: Membership) -> Response:
        hash = fields.hash_value(request.path_params["hash"])
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
            changed = await store.update_package(hash, tool=fields.tool(value))
        else:
            changed = await store.update_package(hash, mimetype=fields.mimetype(value, ""))
        if not changed:  # deleted meanwhile
            raise Refused(404, f"no package with hash {hash}")
        return Response(status_code=200)

    async def delete(
        request: Request, who: Membership, hash: str, admin: str | None = None
    ) -> Response:
        if admin is not None:  # TAK Server's admin delete: any package, whatever its groups
            found = await store.package(hash)
            if found is None:
                raise Refused(404, f"no package with hash {hash}")
            package = found
        else:
            package = await find(hash, who)
        foreign = set(package.groups) - (who.inbound | who.outbound)
        if foreign and admin is None:
            raise Refused(
                403,
                "the package is also shared in groups you are not in "
                f"({', '.join(sorted(foreign))}); an administrator must delete it "
                "(DELETE /Marti/api/files/{hash} with an admin certificate)",
            )
        async with commit:
            await store.delete_package(hash)
            await blobs.delete(hash)
        log.info("package %s (%s) deleted%s", hash, package.name, f" by {admin}" if admin else "")
        return JSONResponse({"deleted": hash})

    async def sync_delete(request: Request, who: Membership) -> Response:
        return await delete(request, who, fields.required_hash(request, "hash"))

    async def files_delete(request: Request, who: Membership) -> Response:
        hash = fields.hash_value(request.path_params["hash"])
        return await delete(request, who, hash, settings.admin(request))

    return [
        Route("/Marti/sync/missionupload", endpoint(mission_upload), methods=["POST"]),
        Route("/Marti/sync/upload", endpoint(sync_upload), methods=["POST"]),
        Route("/Marti/sync/missionquery", endpoint(mission_query), methods=["GET"]),
        Route("/Marti/sync/content", endpoint(content), methods=["GET", "HEAD"]),
        Route("/Marti/sync/search", endpoint(sync_search), methods=["GET"]),
        Route("/Marti/api/sync/search", endpoint(api_search), methods=["GET"]),
        Route("/Marti/api/sync/metadata/{hash}/{field}", endpoint(set_metadata), methods=["PUT"]),
        Route("/Marti/sync/delete", endpoint(sync_delete), methods=["POST", "DELETE"]),
        *file_routes(store, settings.max_bytes, endpoint),
        Route("/Marti/api/files/{hash}", endpoint(files_delete), methods=["DELETE"]),
    ]
