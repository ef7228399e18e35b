"""The file manager's read-only endpoints beside the package ones.

- ``GET /Marti/sync/{hash}/metadata``: one package's Metadata JSON (node-tak's ``meta``), or 404.
- ``GET /Marti/api/files/metadata/count[?missionPackage=true]``: how many packages the caller
  may see (data packages only: those with the ``missionpackage`` keyword), as TAK Server's
  ``Count`` envelope.
- ``GET /files/api/config``: ``{"uploadSizeLimit": N}``, the largest upload in whole MiB
  (CloudTAK checks a server with it before anything else).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from accord.api.marti import envelope
from accord.api.packages import fields, views
from accord.api.packages.fields import Refused
from accord.domain.groups import Membership
from accord.store.contract import PackageStore
from accord.store.records import PackageQuery

MIB = 1024 * 1024

Handler = Callable[[Request, Membership], Awaitable[Response]]
# Signs the caller in and turns Refused and store failures into answers (routes.endpoint).
Wrap = Callable[[Handler], Callable[[Request], Awaitable[Response]]]


def file_routes(store: PackageStore, max_bytes: int, endpoint: Wrap) -> list[Route]:
    async def metadata(request: Request, who: Membership) -> Response:
        hash = fields.hash_value(request.path_params["hash"])
        package = await store.package(hash)
        if package is None or not fields.visible(package, who):
            raise Refused(404, f"no package with hash {hash}")
        return JSONResponse(views.metadata(package))

    async def count(request: Request, who: Membership) -> Response:
        if fields.one(request, "mission"):
            raise Refused(400, "mission contents are counted by the missions API, not here")
        packages_only = (fields.one(request, "missionPackage") or "").lower() == "true"
        keyword = fields.MISSION_PACKAGE_KEYWORD if packages_only else None
        found = await store.packages(PackageQuery(visible_to=who.outbound, keyword=keyword))
        return JSONResponse(envelope("Count", len(found)))

    async def config(request: Request, who: Membership) -> Response:
        return JSONResponse({"uploadSizeLimit": max_bytes // MIB})

    return [
        Route("/Marti/sync/{hash}/metadata", endpoint(metadata), methods=["GET"]),
        Route("/Marti/api/files/metadata/count", endpoint(count), methods=["GET"]),
        Route("/files/api/config", endpoint(config), methods=["GET"]),
    ]
