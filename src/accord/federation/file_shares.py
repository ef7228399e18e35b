"""Data packages shared across partner links, under the same release policy as everything else.

A package travels as TAK does it: a ``b-f-t-r`` file-transfer request whose ``<fileshare>``
names the package (``sha256``, ``senderUrl``, ``sizeInBytes``, ``filename``). The request goes
through the link's release gate like any event; when it is released to a partner:

- **we** (sender) remember that this partner may fetch that hash, and point ``senderUrl`` at our
  partner-facing HTTPS port (``federation_files_port``), where the partner's federation
  certificate (issued by its pinned CA) is the only way in, and only announced hashes are
  served (:func:`accord.api.partner_downloads.partner_files_app`);
- **the partner** (receiver) fetches the package from there with its federation certificate,
  checks its size and SHA-256, stores it among its own packages (visible to the groups the link
  delivers to), points ``senderUrl`` at its own Marti API and only then delivers the request to
  its users, whose devices never need to reach the other organisation.

A request that names no package (no SHA-256) is withheld; one for a package the sender does not
hold reaches nobody on the other side (the fetch fails, is logged and counted).
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

import httpx
from lxml import etree

from accord.cot.errors import MalformedEvent
from accord.cot.model import CotEvent
from accord.cot.xml import inspect_detail, parse_fragment
from accord.domain.partners import Partner
from accord.store.blobs import BlobError, Blobs
from accord.store.contract import Store, StoreError
from accord.store.records import Package

log = logging.getLogger("accord.federation")

FILE_REQUEST = "b-f-t-r"
ANNOUNCED = 10_000  # hashes remembered per partner as fetchable
FETCH_TIMEOUT_S = 300.0
FETCHES = 4  # downloads from partners at once; more wait (a partner announcing many files)
# A mission file's content that could not be fetched is tried again after each of these: a
# link flap (the partner's package port down a while) loses no file of a shared mission.
FETCH_RETRY_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)
_HASH = re.compile(r"[0-9a-f]{64}")


def fileshare(event: CotEvent) -> tuple[etree._Element, etree._Element] | None:
    """(detail root, ``<fileshare>``) of a file-transfer request, or None."""
    if event.type != FILE_REQUEST or "fileshare" not in event.detail.xml:
        return None
    try:
        root = parse_fragment(f"<detail>{event.detail.xml}</detail>")
    except MalformedEvent:
        return None
    share = root.find("fileshare")
    return None if share is None else (root, share)


def _hash_of(share: etree._Element) -> str | None:
    digest = (share.get("sha256") or "").lower()
    if _HASH.fullmatch(digest):
        return digest
    url = share.get("senderUrl") or ""
    found = re.search(r"[?&](?:hash|uid)=([0-9a-fA-F]{64})", url)
    return found.group(1).lower() if found else None


def _with_url(event: CotEvent, root: etree._Element, share: etree._Element, url: str) -> CotEvent:
    share.set("senderUrl", url)
    return replace(event, detail=inspect_detail(root, None), raw=b"", raw_format=None)


class FileShares:
    def __init__(
        self,
        store: Store,
        blobs: Blobs,
        *,
        own_url: Callable[[str], str],  # hash -> our Marti content URL for our users
        partner_url: Callable[[str], str],  # hash -> our URL for partners
        client_tls: Callable[[Partner], ssl.SSLContext],  # to fetch from a partner
        max_bytes: int,
        wall_ms: Callable[[], int],
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._own_url = own_url
        self._partner_url = partner_url
        self._client_tls = client_tls
        self._max_bytes = max_bytes
        self._wall_ms = wall_ms
        self._announced: dict[str, OrderedDict[str, None]] = {}
        self._group: asyncio.TaskGroup | None = None  # the fetches, while run() runs
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._fetching = asyncio.Semaphore(FETCHES)
        self.fetched = self.failed = 0
        self.fetch_attempts = 0
        self.retry_delays_s: tuple[float, ...] = FETCH_RETRY_DELAYS_S

    # -- sending ---------------------------------------------------------------------------
    def outbound(self, partner: Partner, event: CotEvent) -> CotEvent | None:
        """A released event on its way to ``partner``: a file request is rewritten to point at
        our partner port and its package becomes fetchable by that partner."""
        found = fileshare(event)
        if found is None:
            return event
        root, share = found
        digest = _hash_of(share)
        if digest is None:
            return None  # names no package: nothing the partner could fetch
        announced = self._announced.setdefault(partner.name, OrderedDict())
        announced[digest] = None
        announced.move_to_end(digest)
        while len(announced) > ANNOUNCED:
            announced.popitem(last=False)
        share.set("sha256", digest)
        return _with_url(event, root, share, self._partner_url(digest))

    def offer(self, partner: Partner, digest: str) -> str:
        """Make package ``digest`` fetchable by ``partner`` (a file of a shared mission); the
        URL it fetches it from."""
        announced = self._announced.setdefault(partner.name, OrderedDict())
        announced[digest] = None
        announced.move_to_end(digest)
        while len(announced) > ANNOUNCED:
            announced.popitem(last=False)
        return self._partner_url(digest)

    def fetch(
        self, partner: Partner, url: str, digest: str, name: str, groups: tuple[str, ...]
    ) -> None:
        """Fetch ``partner``'s package ``digest`` from ``url`` in the background (a file of its
        mission, for the mirror), tried again after each of ``retry_delays_s``; a fetch that
        still fails is logged and counted."""
        if self._group is None:
            self.failed += 1
            return
        share = etree.Element("fileshare", filename=name[:255])
        root = etree.Element("detail")
        root.append(share)

        async def fetch() -> None:
            delays = self.retry_delays_s
            for attempt in range(len(delays) + 1):
                try:
                    async with self._fetching:
                        self.fetch_attempts += 1
                        if await self._blobs.size(digest) is None:
                            await self._download(partner, url, digest, share, groups)
                except (httpx.HTTPError, BlobError, StoreError, OSError, ssl.SSLError) as exc:
                    if attempt == len(delays):
                        self.failed += 1
                        log.warning(
                            "partner %s: cannot fetch mission file %s (%d attempts): %s",
                            partner.name, digest, attempt + 1, exc,
                        )  # fmt: skip
                        return
                    if attempt == 0:
                        log.info(
                            "partner %s: mission file %s not fetched (%s), trying again",
                            partner.name, digest, exc,
                        )  # fmt: skip
                    await asyncio.sleep(delays[attempt])
                    continue
                self.fetched += 1
                return

        task = self._group.create_task(fetch())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def may_fetch(self, partner: str, digest: str) -> bool:
        return digest in self._announced.get(partner, {})

    # -- receiving -------------------------------------------------------------------------
    def inbound(
        self,
        partner: Partner,
        event: CotEvent,
        groups: tuple[str, ...],
        deliver: Callable[[CotEvent], None],
    ) -> bool:
        """True when ``event`` is a file request this takes over: it is delivered (with
        ``deliver``) once the package is fetched and stored here, else dropped and logged."""
        found = fileshare(event)
        if found is None:
            return False
        if self._group is None:
            self.failed += 1
            log.warning("partner %s: a file request arrived while not fetching", partner.name)
            return True
        task = self._group.create_task(self._guarded(partner, event, found, groups, deliver))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def run(self) -> None:
        """Run the fetches (in one task group) until :meth:`stop`, which cancels them."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            try:
                await self._stopping.wait()
            finally:
                self._group = None
                for task in self._tasks:
                    task.cancel()

    def stop(self) -> None:
        self._stopping.set()

    async def _guarded(
        self,
        partner: Partner,
        event: CotEvent,
        found: tuple[etree._Element, etree._Element],
        groups: tuple[str, ...],
        deliver: Callable[[CotEvent], None],
    ) -> None:
        """One fetch; a failure nobody foresaw is logged with its stack and counted, and the
        other fetches go on."""
        try:
            await self._fetch(partner, event, found, groups, deliver)
        except Exception:
            self.failed += 1
            log.exception("partner %s: fetching a package failed", partner.name)

    async def _fetch(
        self,
        partner: Partner,
        event: CotEvent,
        found: tuple[etree._Element, etree._Element],
        groups: tuple[str, ...],
        deliver: Callable[[CotEvent], None],
    ) -> None:
        root, share = found
        digest = _hash_of(share)
        url = share.get("senderUrl") or ""
        if digest is None or not url.startswith("https://"):
            self.failed += 1
            log.warning("partner %s: a file request without a hash or https URL", partner.name)
            return
        try:
            async with self._fetching:
                if await self._blobs.size(digest) is None:
                    await self._download(partner, url, digest, share, groups)
        except (httpx.HTTPError, BlobError, StoreError, OSError, ssl.SSLError) as exc:
            self.failed += 1
            log.warning(
                "partner %s: cannot fetch package %s from %s: %s", partner.name, digest, url, exc
            )
            return
        self.fetched += 1
        deliver(_with_url(event, root, share, self._own_url(digest)))

    async def _download(
        self,
        partner: Partner,
        url: str,
        digest: str,
        share: etree._Element,
        groups: tuple[str, ...],
    ) -> None:
        tls = self._client_tls(partner)
        timeout = httpx.Timeout(FETCH_TIMEOUT_S, connect=10.0)
        async with (
            httpx.AsyncClient(verify=tls, timeout=timeout) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise httpx.HTTPStatusError(
                    f"HTTP {response.status_code}", request=response.request, response=response
                )
            async with await self._blobs.writer(self._max_bytes) as writer:
                async for chunk in response.aiter_bytes():
                    await writer.write(chunk)
                await writer.seal(digest)
                name = share.get("filename") or share.get("name") or f"{digest}.zip"
                package = Package(
                    hash=digest,
                    name=name[:255],
                    size=writer.size,
                    groups=groups,
                    submitter=f"partner:{partner.name}",
                    submitted_ms=self._wall_ms(),
                    creator_uid=(share.get("senderUid") or "")[:255],
                )
                await writer.publish()
                await self._store.add_package(package)
        log.info("partner %s: package %s (%s) fetched and stored", partner.name, digest, name)
