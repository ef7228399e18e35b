"""``t-x-takp-v/q/r``: the exchange that moves a stream from XML to TAK protocol version 1.

A small table-driven state machine (reference tak-protocol §2.7). The server offers once (with
``TakServerVersionInfo``, as TAK Server does: node-tak recognises an offer by it); a client that
saw the offer may request a version; the server answers in XML and both directions switch at
the byte after the answer. A client that never asks stays XML. Like the TAK Server's Netty
path, the server checks only the requested version (a request under another uid than the
offer's is accepted, logged at debug), keeps listening for a request for the whole connection
and re-arms after refusing one.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from accord import __version__
from accord.cot.model import CotEvent, Detail, Point, TakControl
from accord.cot.xml import detail_from_xml

log = logging.getLogger("accord.cot")

OFFER_TYPE = "t-x-takp-v"
REQUEST_TYPE = "t-x-takp-q"
RESPONSE_TYPE = "t-x-takp-r"
NEGOTIATION_TYPES = frozenset({OFFER_TYPE, REQUEST_TYPE, RESPONSE_TYPE})
SUPPORTED_VERSIONS = (1,)
# The spec's own figure: each side waits 60 s for the other's step.
STEP_TIMEOUT_S = 60.0
# TakServerVersionInfo: TAK Server sends its release (e.g. "5.2-RELEASE-16") and the Marti API
# version it serves (Constants.API_VERSION, "3"; the same as /Marti/api/version/config).
SERVER_VERSION = f"{__version__}-Accord"
API_VERSION = "3"


class Role(enum.Enum):
    SERVER = "server"
    CLIENT = "client"


class State(enum.Enum):
    XML = "xml"  # nothing offered yet (server) or seen yet (client)
    OFFERED = "offered"  # server: offer sent, listening for a request
    REQUESTED = "requested"  # client: request sent, waiting for the answer
    PROTOBUF = "protobuf"  # switched: both directions speak version 1
    XML_ONLY = "xml-only"  # client: refused or no common version; XML for good


@dataclass(frozen=True, slots=True)
class Step:
    """What one negotiation event causes: a reply to send (in XML) and whether to switch."""

    reply: CotEvent | None = None
    switch: bool = False


def control_event(kind: str, uid: str, now_ms: int, body: str) -> CotEvent:
    """A negotiation event: how m-g, point 0,0 with unknown errors, stale after 60 s."""
    return CotEvent(
        uid=uid,
        type=kind,
        how="m-g",
        time=now_ms,
        start=now_ms,
        stale=now_ms + int(STEP_TIMEOUT_S * 1000),
        point=Point(),
        detail=detail_from_xml(f"<TakControl>{body}</TakControl>"),
    )


def offer(uid: str, now_ms: int, server_version: str = SERVER_VERSION) -> CotEvent:
    """The server's offer: the versions it speaks, then who it is (TAK Server's order)."""
    body = "".join(f'<TakProtocolSupport version="{v}"/>' for v in SUPPORTED_VERSIONS)
    body += (
        f"<TakServerVersionInfo serverVersion={quoteattr(server_version)}"
        f' apiVersion="{API_VERSION}"/>'
    )
    return control_event(OFFER_TYPE, uid, now_ms, body)


def request(uid: str, now_ms: int, version: int = 1) -> CotEvent:
    return control_event(REQUEST_TYPE, uid, now_ms, f'<TakRequest version="{version}"/>')


def response(uid: str, now_ms: int, accepted: bool) -> CotEvent:
    status = "true" if accepted else "false"
    return control_event(RESPONSE_TYPE, uid, now_ms, f'<TakResponse status="{status}"/>')


def _control(event: CotEvent) -> TakControl:
    return event.detail.takcontrol or TakControl()


class Negotiation:
    """The negotiation state of one stream, for either role."""

    def __init__(self, role: Role) -> None:
        self.role = role
        self.state = State.XML
        self.uid = ""  # the transaction uid of the offer

    def make_offer(self, uid: str, now_ms: int) -> CotEvent:
        """Server: the one offer this connection gets."""
        if self.role is not Role.SERVER or self.state is not State.XML:
            raise RuntimeError("an offer is made once, by the server, before anything else")
        self.uid, self.state = uid, State.OFFERED
        return offer(uid, now_ms)

    def receive(self, event: CotEvent, now_ms: int) -> Step:
        """Feed one negotiation event; unknown combinations are ignored, as the spec says."""
        handler = _TABLE.get((self.role, self.state, event.type))
        return handler(self, event, now_ms) if handler else Step()

    # -- transitions ------------------------------------------------------------------------
    def _server_request(self, event: CotEvent, now_ms: int) -> Step:
        wanted = _control(event).requested
        accepted = wanted in SUPPORTED_VERSIONS
        if event.uid != self.uid:
            log.debug("protocol request uid %r is not the offer's %r", event.uid[:64], self.uid)
        if accepted:
            self.state = State.PROTOBUF
        return Step(response(event.uid, now_ms, accepted), switch=accepted)

    def _client_offer(self, event: CotEvent, now_ms: int) -> Step:
        common = set(_control(event).supported) & set(SUPPORTED_VERSIONS)
        if not common:
            self.state = State.XML_ONLY
            return Step()
        self.uid, self.state = event.uid, State.REQUESTED
        return Step(request(event.uid, now_ms, max(common)))

    def _client_response(self, event: CotEvent, now_ms: int) -> Step:
        if event.uid != self.uid:
            return Step()
        if _control(event).accepted:
            self.state = State.PROTOBUF
            return Step(switch=True)
        self.state = State.XML_ONLY
        return Step()


_Handler = Callable[[Negotiation, CotEvent, int], Step]
_TABLE: dict[tuple[Role, State, str], _Handler] = {
    (Role.SERVER, State.OFFERED, REQUEST_TYPE): Negotiation._server_request,
    (Role.CLIENT, State.XML, OFFER_TYPE): Negotiation._client_offer,
    (Role.CLIENT, State.REQUESTED, RESPONSE_TYPE): Negotiation._client_response,
}

__all__ = [
    "NEGOTIATION_TYPES",
    "Detail",
    "Negotiation",
    "Role",
    "State",
    "Step",
    "offer",
    "request",
    "response",
]
