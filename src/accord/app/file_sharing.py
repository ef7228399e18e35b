"""Composition of file sharing across partner links: the FileShares of the links, and the
partner-facing HTTPS port partners fetch announced packages from."""

from __future__ import annotations

import ssl
from contextlib import AsyncExitStack

from accord.api.partner_downloads import PartnerCertificates, partner_files_app
from accord.app.http_serve import serve_http
from accord.app.running import Running, wall_ms
from accord.config import Config
from accord.domain.partners import Partner
from accord.federation.file_shares import FileShares
from accord.federation.transport import Federation
from accord.identity.ca import PkiPaths
from accord.store.blobs import Blobs


def file_shares(running: Running, config: Config, pki: PkiPaths, blobs: Blobs) -> FileShares:
    """What the links use; the URLs name the ports actually bound (known once listening)."""
    assert running.store is not None
    host = config.server_names[0]

    def own_url(digest: str) -> str:
        port = running.ports.get("https", config.https_port)
        return f"https://{host}:{port}/Marti/sync/content?hash={digest}"

    def partner_url(digest: str) -> str:
        port = running.ports.get("federation_files", config.federation_files_port)
        return f"https://{host}:{port}/Marti/sync/content?hash={digest}"

    contexts: dict[str, ssl.SSLContext] = {}

    def client_tls(partner: Partner) -> ssl.SSLContext:
        """Made once per partner (it reads files: not on every fetch, inside the loop)."""
        ctx = contexts.get(partner.name)
        if ctx is None:
            fed = running.federation
            assert fed is not None
            ctx = ssl.create_default_context(cadata=fed.partner_ca(partner).decode())
            ctx.load_cert_chain(pki.federation_cert, pki.federation_key)
            contexts[partner.name] = ctx
        return ctx

    return FileShares(
        running.store,
        blobs,
        own_url=own_url,
        partner_url=partner_url,
        client_tls=client_tls,
        max_bytes=config.max_package_bytes,
        wall_ms=wall_ms,
    )


async def serve_partner_files(
    running: Running,
    config: Config,
    pki: PkiPaths,
    blobs: Blobs,
    federation: Federation,
    port: int,
    stack: AsyncExitStack | None = None,
) -> None:
    """The partner-facing package port: mutual TLS with the pinned partner CAs only
    (``stack``: what shuts it down, default ``running.stack``)."""
    assert running.store is not None
    files = federation.files
    assert files is not None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(pki.federation_cert, pki.federation_key)
    ctx.load_verify_locations(cadata=federation.pinned_pem().decode())
    ctx.verify_mode = ssl.CERT_REQUIRED
    certificates = PartnerCertificates()
    app = partner_files_app(
        running.store, blobs, certificates, federation.partner_of, files.may_fetch
    )
    where = ("federation_files", port, config.federation_files_port, "--federation-files-port")
    await serve_http(running, config, app, ctx, where, certificates.protocol_class(), stack=stack)
