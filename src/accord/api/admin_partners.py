"""The admin API's partners and their sharing ledger, and the data packages in the store.

    GET    /api/admin/partners                 each partner: its links (state, traffic), the
                                               release decisions per policy rule, and each
                                               ledger log's size and cosignature lag
    GET    /api/admin/partners/{name}/ledger   replay that partner's logs through the ledger
                                               verifier (as ``accord ledger verify``)
    GET    /api/admin/packages                 the data packages, newest first
    DELETE /api/admin/packages/{hash}          delete one (metadata and bytes)

Cosignature lag is how many entries of a log the partner has not cosigned yet: the size of our
newest checkpoint minus that of the newest one it cosigned.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from accord.api.admin_guard import BadRequest, Guard
from accord.domain.views import LinkView, Probes
from accord.identity.ca import PkiError
from accord.identity.ledger_key import ledger_verifier, partner_verifier
from accord.ledger.log import origin_for
from accord.ledger.verify import Inconsistency, LogVerifier, StoredCheckpoint, StoredCosignature
from accord.store.blobs import Blobs
from accord.store.contract import LedgerStore, PackageStore, StoreError
from accord.store.records import Package, PackageQuery

log = logging.getLogger("accord.admin")


@dataclass(frozen=True)
class StoreAdmin:
    """The store parts the partners and packages routes read (and, for packages, delete)."""

    ledger: LedgerStore
    packages: PackageStore
    blobs: Blobs | None
    pki_root: Path  # our ledger key and the partners' keys


def _iso(seconds: float) -> str:
    value = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def link_json(view: LinkView) -> dict[str, Any]:
    return {
        "direction": view.direction,
        "state": view.state,
        "since": _iso(view.since_s),
        "last_error": view.last_error,
        "events_in": view.events_in,
        "events_out": view.events_out,
        "withheld": view.withheld,
        "dropped": view.dropped,
    }


async def log_status(store: LedgerStore, partner: str, direction: str) -> dict[str, Any]:
    checkpoints = await store.ledger_checkpoints(partner, direction)
    cosignatures = await store.ledger_cosignatures(partner, direction)
    signed = max((c.size for c in checkpoints), default=0)
    cosigned = max((c.size for c in cosignatures), default=0)
    return {
        "direction": direction,
        "entries": await store.ledger_size(partner, direction),
        "checkpoint_size": signed,
        "cosigned_size": cosigned,
        "cosignature_lag": max(signed - cosigned, 0),
        "receipted": await store.ledger_receipted(partner, direction),
    }


async def verify_log(
    store: LedgerStore, pki_root: Path, partner: str, direction: str
) -> dict[str, Any]:
    """One log replayed through :class:`LogVerifier`: consistent or the first problem."""
    key = ledger_verifier(pki_root)
    result: dict[str, Any] = {"direction": direction, "consistent": False, "error": None}
    if key is None:
        result["error"] = f"no ledger key in {pki_root}: nothing was ever signed here"
        return result
    try:
        verifier = LogVerifier(
            partner=partner,
            direction=direction,
            origin=origin_for(key.name, partner, direction),
            log_key=key,
            partner_key=partner_verifier(pki_root, partner),
            checkpoints=[
                StoredCheckpoint(c.size, c.note)
                for c in await store.ledger_checkpoints(partner, direction)
            ],
            cosignatures=[
                StoredCosignature(c.size, c.line)
                for c in await store.ledger_cosignatures(partner, direction)
            ],
            receipts=[r.note for r in await store.ledger_receipts(partner, direction)],
        )
        start = 0
        while page := await store.ledger_entries(partner, direction, start):
            verifier.feed([(e.seq, e.data, e.leaf) for e in page])
            start = page[-1].seq + 1
        summary = verifier.finish()
    except (Inconsistency, PkiError) as exc:
        result["error"] = str(exc)
        return result
    result.update(
        consistent=True,
        entries=summary.entries,
        checkpoints=summary.checkpoints,
        cosigned=summary.cosigned,
        receipts=summary.receipts,
        unchecked=list(summary.unchecked),
    )
    return result


def package_json(p: Package) -> dict[str, Any]:
    return {
        "hash": p.hash,
        "name": p.name,
        "size": p.size,
        "mimetype": p.mimetype,
        "tool": p.tool,
        "keywords": list(p.keywords),
        "groups": list(p.groups),
        "submitter": p.submitter,
        "creator_uid": p.creator_uid,
        "submitted_at": _iso(p.submitted_ms / 1000) if p.submitted_ms else None,
    }


def partner_routes(stores: StoreAdmin | None, probes: Probes, only: Guard) -> list[BaseRoute]:
    def store() -> StoreAdmin:
        if stores is None:
            raise BadRequest(404, "this server has no store to read")
        return stores

    async def partners(request: Request, caller: str) -> Response:
        links = probes.links.links() if probes.links is not None else []
        try:
            logs = await stores.ledger.ledger_logs() if stores is not None else []
        except StoreError as exc:
            raise BadRequest(503, f"the store cannot be read: {exc}") from None
        names = sorted({v.partner for v in links} | {p for p, _ in logs})
        out = []
        for name in names:
            ledger = [await log_status(store().ledger, p, d) for p, d in logs if p == name]
            out.append(
                {
                    "partner": name,
                    "links": [link_json(v) for v in links if v.partner == name],
                    "policy": (
                        probes.release.decisions(name) if probes.release is not None else {}
                    ),
                    "ledger": ledger,
                }
            )
        return JSONResponse({"partners": out})

    async def ledger(request: Request, caller: str) -> Response:
        s = store()
        name = request.path_params["name"]
        logs = [d for p, d in await s.ledger.ledger_logs() if p == name]
        if not logs:
            raise BadRequest(404, f"no ledger entries with {name!r}")
        results = [await verify_log(s.ledger, s.pki_root, name, d) for d in logs]
        return JSONResponse({"partner": name, "logs": results})

    async def packages(request: Request, caller: str) -> Response:
        found = await store().packages.packages(PackageQuery())
        return JSONResponse({"packages": [package_json(p) for p in found]})

    async def delete_package(request: Request, caller: str) -> Response:
        s = store()
        digest = request.path_params["hash"].lower()
        found = await s.packages.package(digest)
        if found is None:
            raise BadRequest(404, f"no package with hash {digest}")
        await s.packages.delete_package(digest)
        if s.blobs is not None:
            await s.blobs.delete(digest)
        log.info("%s deleted package %s (%s)", caller, digest, found.name)
        return JSONResponse({"deleted": digest})

    return [
        Route("/api/admin/partners", only(partners), methods=["GET"]),
        Route("/api/admin/partners/{name}/ledger", only(ledger), methods=["GET"]),
        Route("/api/admin/packages", only(packages), methods=["GET"]),
        Route("/api/admin/packages/{hash}", only(delete_package), methods=["DELETE"]),
    ]
