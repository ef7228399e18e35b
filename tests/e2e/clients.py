"""Test clients that speak CoT over real sockets, as a TAK client would."""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from pathlib import Path

from accord.cot.connection import Closed, NeedData, StreamConnection
from accord.cot.errors import MalformedEvent
from accord.cot.framing import XmlSplitter
from accord.cot.model import Contact, CotEvent, Point, WireFormat
from accord.cot.negotiation import OFFER_TYPE, Role
from accord.cot.xml import decode_xml, detail_from_xml, encode_xml, escape_attr

RECV_TIMEOUT_S = 5.0
# Every client a test opens, so that the fixture in conftest.py can close them all.
OPEN_CLIENTS: list[CotClient] = []


def client_tls_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """What ATAK does: present a client cert, trust the server's CA, no hostname check."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False
    ctx.load_cert_chain(cert, key)
    return ctx


def sa(uid: str, callsign: str, *, lat: float = 1.0, lon: float = 2.0, extra: str = "") -> CotEvent:
    """An ATAK-like self report, stale in 6 minutes (stationary cadence, §8.4)."""
    now = int(time.time() * 1000)
    detail = (
        f'<contact callsign="{escape_attr(callsign)}" endpoint="*:-1:stcp"/>'
        f'<__group name="Cyan" role="Team Member"/>{extra}'
    )
    return CotEvent(
        uid=uid,
        type="a-f-G-U-C",
        how="m-g",
        time=now,
        start=now,
        stale=now + 375_000,
        point=Point(lat, lon, 10.0, 5.0, 9999999.0),
        detail=detail_from_xml(detail),
    )


def marker(uid: str, *, detail: str = "", type_: str = "b-m-p-s-m") -> CotEvent:
    now = int(time.time() * 1000)
    return CotEvent(
        uid=uid,
        type=type_,
        how="h-g-i-g-o",
        time=now,
        start=now,
        stale=now + 60_000,
        point=Point(3.0, 4.0),
        detail=detail_from_xml(detail),
    )


class CotClient:
    """A streaming client. ``protobuf=True`` negotiates TAK protocol v1 when offered."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, protobuf: bool
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.protobuf = protobuf
        self.conn = StreamConnection(Role.CLIENT)
        self.xml = XmlSplitter()
        self.offers: list[CotEvent] = []
        self.raw_frames: list[bytes] = []  # XML clients: every frame as received
        self._pending: list[CotEvent] = []
        self.closed = False

    @classmethod
    async def connect(
        cls,
        port: int,
        *,
        tls: ssl.SSLContext | None = None,
        protobuf: bool = False,
        host: str = "127.0.0.1",
    ) -> CotClient:
        reader, writer = await asyncio.open_connection(host, port, ssl=tls)
        client = cls(reader, writer, protobuf=protobuf)
        OPEN_CLIENTS.append(client)
        return client

    @property
    def wire_format(self) -> WireFormat:
        return self.conn.wire_format if self.protobuf else WireFormat.XML

    async def send(self, event: CotEvent | bytes) -> None:
        if isinstance(event, CotEvent):
            data = self.conn.send(event) if self.protobuf else encode_xml(event)
        else:
            data = event
        self.writer.write(data)
        await self.writer.drain()

    async def negotiate(self, timeout: float = RECV_TIMEOUT_S) -> None:
        """Read until the switch to protobuf has happened (events read meanwhile are kept)."""
        assert self.protobuf
        async with asyncio.timeout(timeout):
            while self.conn.wire_format is not WireFormat.PROTOBUF:
                self._pending.extend(await self._read_events())

    async def recv(self, timeout: float = RECV_TIMEOUT_S) -> CotEvent:
        """The next event the server sends (negotiation offers are not returned)."""
        async with asyncio.timeout(timeout):
            while not self._pending:
                self._pending.extend(await self._read_events())
        return self._pending.pop(0)

    async def recv_until(self, predicate: object, timeout: float = RECV_TIMEOUT_S) -> CotEvent:
        """Skip events until one satisfies ``predicate`` (a callable on CotEvent)."""
        assert callable(predicate)
        async with asyncio.timeout(timeout):
            while True:
                event = await self.recv(timeout)
                if predicate(event):
                    return event

    async def expect_silence(self, seconds: float = 0.3) -> list[CotEvent]:
        """Events that arrive within ``seconds`` (a test asserts this is empty)."""
        got: list[CotEvent] = []
        try:
            async with asyncio.timeout(seconds):
                while True:
                    got.append(await self.recv(seconds))
        except TimeoutError:
            pass
        return got

    async def until_pong(self, timeout: float = RECV_TIMEOUT_S) -> list[CotEvent]:
        """Send a ping (t-x-c-t) and return the events the server sent before its pong.

        The hub answers a ping in its session's order, behind everything already routed to
        it (a newcomer's first sync included): what a test waited ``expect_silence`` for, if
        the absent event would have been routed to this client before the ping was read."""
        await self.send(marker(new_uid("PING"), type_="t-x-c-t"))
        before: list[CotEvent] = []
        await self.recv_until(lambda e: e.type == "t-x-c-t-r" or before.append(e), timeout)
        return before

    async def _read_events(self) -> list[CotEvent]:
        data = await self.reader.read(65536)
        if not data:
            self.closed = True
            raise ConnectionError("server closed the connection")
        if not self.protobuf:
            return self._xml_events(data)
        self.conn.receive_data(data, time.time())
        out: list[CotEvent] = []
        while True:
            try:
                event = self.conn.next_event(time.time())
            except MalformedEvent as exc:
                raise AssertionError(f"server sent a malformed event: {exc}") from None
            reply = self.conn.data_to_send()
            if reply:
                self.writer.write(reply)
            if isinstance(event, NeedData):
                return out
            if isinstance(event, Closed):
                raise ConnectionError(event.reason)
            out.append(event)

    def _xml_events(self, data: bytes) -> list[CotEvent]:
        self.xml.feed(data)
        out: list[CotEvent] = []
        while (frame := self.xml.next_frame()) is not None:
            self.raw_frames.append(frame)
            event = decode_xml(frame)
            if event.type == OFFER_TYPE:
                self.offers.append(event)  # an XML-only client ignores the offer (§2.7)
                continue
            out.append(event)
        return out

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        try:
            async with asyncio.timeout(2):
                await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError, TimeoutError):
            pass


def new_uid(prefix: str = "ANDROID") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def contact_of(event: CotEvent) -> Contact | None:
    return event.detail.contact


def canonical(event: CotEvent) -> tuple[object, ...]:
    """An event with its detail reduced to an order-free form: protobuf conversion may reorder
    elements and attributes (typed fields travel apart from xmlDetail), never change them."""
    from lxml import etree

    def value(text: str) -> object:
        try:
            return float(text)  # typed fields carry numbers: "0" comes back as "0.0"
        except ValueError:
            return text

    def norm(el: etree._Element) -> tuple[object, ...]:
        children = tuple(sorted((norm(c) for c in el), key=repr))
        attrs = tuple(sorted((k, value(v)) for k, v in el.attrib.items()))
        return (el.tag, attrs, (el.text or "").strip(), children)

    root = etree.fromstring(f"<detail>{event.detail.xml}</detail>")
    fields = (event.uid, event.type, event.how, event.time, event.start, event.stale, event.point)
    return (*fields, norm(root))
