"""UDP input: one event per datagram, XML or TAK protocol mesh, optionally from multicast.

Datagrams are routed like stream traffic from a party that cannot be answered.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct

from accord.cot.connection import Limits
from accord.cot.errors import Malformation, MalformedEvent
from accord.cot.framing import split_datagram
from accord.cot.model import WireFormat
from accord.cot.proto import decode_proto
from accord.cot.xml import decode_xml
from accord.domain.contacts import Party
from accord.server.census import Census
from accord.server.hub import Hub

log = logging.getLogger("accord.udp")


class UdpInput(asyncio.DatagramProtocol):
    def __init__(self, hub: Hub, party: Party, limits: Limits, census: Census) -> None:
        self.hub = hub
        self.party = party
        self.limits = limits
        self.census = census
        self.tally = census.listen("udp")

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        counters = self.hub.counters
        counters.udp_in += 1
        try:
            if len(data) > self.limits.max_event_bytes:
                raise MalformedEvent("datagram larger than max_event_bytes", Malformation.TOO_LARGE)
            fmt, payload = split_datagram(data)
            if fmt is WireFormat.XML:
                event = decode_xml(payload.strip(), max_depth=self.limits.max_depth)
            else:
                event = decode_proto(payload, max_depth=self.limits.max_depth)
        except MalformedEvent as exc:
            counters.udp_malformed += 1
            counters.malformed += 1
            self.tally.malformed += 1
            self.census.malformed("udp", exc.reason)
            log.debug("malformed datagram from %s: %s", addr, exc)
            return
        self.tally.events_in += 1
        self.hub.submit(self.party, event)

    def error_received(self, exc: Exception) -> None:
        log.warning("UDP input error: %s", exc)


def multicast_socket(bind: str, port: int, group: str) -> socket.socket:
    """A UDP socket bound to ``port`` that has joined ``group`` on the interface of ``bind``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Bound to the group address: it hears that group only, beside the unicast socket that is
    # bound to (bind, port); a unicast-bound socket never sees multicast traffic.
    sock.bind((group, port))
    iface = "0.0.0.0" if bind in ("0.0.0.0", "") else bind
    mreq = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton(iface))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    sock.setblocking(False)
    return sock
