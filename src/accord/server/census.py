"""Who is connected, and what each session and listener has carried: the admin API's view.

Sessions count their own traffic in a :class:`Tally` (plain integer increments on the hot
path); the census only keeps the live sessions by key and, per listener, the sum of the
sessions that have closed. Everything else (totals, queue depths, the client's device) is
worked out when someone asks, so that an idle admin API costs nothing.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from accord.cot.errors import MalformedEvent
from accord.cot.model import WireFormat
from accord.cot.xml import parse_fragment
from accord.domain.contacts import Party
from accord.domain.metrics import Tally
from accord.domain.views import Device, ListenerView, SessionView

if TYPE_CHECKING:
    from accord.server.session import StreamSession

log = logging.getLogger("accord.census")
NO_DEVICE = Device()


class Census:
    """Implements :class:`accord.domain.views.Sessions` over the live stream sessions."""

    def __init__(self) -> None:
        self._live: dict[int, StreamSession] = {}
        self._closed: dict[str, Tally] = {}  # per listener: closed sessions (UDP: everything)
        self._malformed: dict[tuple[str, str], int] = {}  # (listener, reason) -> count
        # The last <detail> each session's device was read from, so that a listing parses a
        # client's <takv> again only when its SA detail has changed.
        self._devices: dict[int, tuple[str, Device]] = {}

    # -- called by the listeners and sessions ----------------------------------------------------
    def listen(self, listener: str) -> Tally:
        """Register a listener by name; returns the tally its closed sessions add up in (a
        UDP input, which has no sessions, counts in it directly)."""
        return self._closed.setdefault(listener, Tally())

    def enter(self, session: StreamSession) -> None:
        assert session.party is not None
        self._live[session.party.key] = session

    def leave(self, session: StreamSession, party: Party) -> None:
        if self._live.pop(party.key, None) is None:
            return
        self._devices.pop(party.key, None)
        self.listen(session.settings.transport).add(session.tally)

    def malformed(self, listener: str, reason: str) -> None:
        key = (listener, reason)
        self._malformed[key] = self._malformed.get(key, 0) + 1

    # -- Sessions (domain/views.py) ----------------------------------------------------------------
    def sessions(self) -> list[SessionView]:
        views = []
        for key, session in self._live.items():
            party, transport = session.party, session.transport
            if party is None or transport is None:
                continue
            last = session.last_event_s
            views.append(
                SessionView(
                    key=key,
                    listener=session.settings.transport,
                    address=party.label,
                    user=session.user,
                    uid=party.uid,
                    callsign=party.callsign,
                    membership=party.membership,
                    wire_format=_FORMAT_NAMES[session.wire_format],
                    device=self._device(party),
                    connected_s=session.connected_s,
                    last_event_s=last if last else None,
                    tally=dataclasses.replace(session.tally),
                    queued_events=session.queued_events,
                    write_buffer_bytes=transport.get_write_buffer_size(),
                )
            )
        return views

    def listeners(self) -> list[ListenerView]:
        totals = {name: dataclasses.replace(tally) for name, tally in self._closed.items()}
        live = dict.fromkeys(totals, 0)
        queued = dict.fromkeys(totals, 0)
        fullest = dict.fromkeys(totals, 0)
        buffered = dict.fromkeys(totals, 0)
        for session in self._live.values():
            name = session.settings.transport
            totals[name].add(session.tally)
            live[name] += 1
            depth = session.queued_events
            queued[name] += depth
            fullest[name] = max(fullest[name], depth)
            if session.transport is not None:
                buffered[name] += session.transport.get_write_buffer_size()
        return [
            ListenerView(
                name=name,
                sessions=live[name],
                tally=tally,
                malformed={r: n for (lst, r), n in sorted(self._malformed.items()) if lst == name},
                queued_events=queued[name],
                max_queued_events=fullest[name],
                write_buffer_bytes=buffered[name],
            )
            for name, tally in totals.items()
        ]

    def disconnect(self, key: int, reason: str) -> bool:
        session = self._live.get(key)
        if session is None:
            return False
        party = session.party
        log.warning(
            "closing peer=%s uid=%s: %s",
            party.label if party else "-",
            (party.uid if party else "") or "-",
            reason,
        )
        # A client that is not reading would never let a graceful close finish.
        session.close(reason, abort=session.blocked)
        return True

    def _device(self, party: Party) -> Device:
        sa = party.last_sa
        if sa is None or "<takv" not in sa.detail.xml:
            return NO_DEVICE
        xml = sa.detail.xml
        cached = self._devices.get(party.key)
        if cached is not None and cached[0] == xml:
            return cached[1]
        device = _takv(xml)
        self._devices[party.key] = (xml, device)
        return device


_FORMAT_NAMES = {WireFormat.XML: "xml", WireFormat.PROTOBUF: "protobuf"}


def _takv(detail_xml: str) -> Device:
    """``<takv device platform os version>`` of an SA detail (ATAK, WinTAK and iTAK send it)."""
    try:
        found = parse_fragment(f"<detail>{detail_xml}</detail>").find("takv")
    except MalformedEvent:  # it was decoded once already; cannot happen, but never fail a listing
        return NO_DEVICE
    if found is None:
        return NO_DEVICE
    attrs = found.attrib
    return Device(
        device=str(attrs.get("device", "")),
        platform=str(attrs.get("platform", "")),
        os=str(attrs.get("os", "")),
        version=str(attrs.get("version", "")),
    )
