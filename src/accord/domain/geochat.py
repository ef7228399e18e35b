"""GeoChat messages built as ATAK builds them (reference tak-protocol §1.3, ``b-t-f``), for
senders that are not ATAK (the web app), and the SA that makes such a sender a contact.

A room message goes to ``All Chat Rooms`` (everyone the sender's groups reach); a direct
message names its recipient's uid in ``<chatgrp uid1>`` and the room is the recipient's
callsign, which is what routing reads (:mod:`accord.domain.routing`). Pure: ``now`` and the
message id are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from accord.cot.made import made_event
from accord.cot.model import CotEvent, Point, iso_from_ms
from accord.cot.xml import escape_attr
from accord.domain.routing import ALL_CHAT_ROOMS, CHAT_TYPE

CHAT_STALE_MS = 24 * 3600 * 1000  # ATAK's: a day
MAX_CHAT_CHARS = 1000  # one message; ATAK's own field is not longer in practice
# A web operator has no position: its contact SA says so (ce/le unknown) and is refreshed
# well within its stale time while the page is open.
WEB_SA_TYPE = "a-f-G-U-C"
WEB_SA_STALE_MS = 120_000
WEB_SA_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class Sender:
    """Who a web session speaks as: its uid and callsign in the chat."""

    uid: str
    callsign: str


class ChatRefused(ValueError):
    """A message that cannot be sent; says why."""


def to_chat(
    sender: Sender,
    text: str,
    now_ms: int,
    message_id: str,
    *,
    to_uid: str = "",
    to_callsign: str = "",
) -> CotEvent:
    """A ``b-t-f`` to ``All Chat Rooms``, or to one contact when ``to_uid`` is given."""
    text = text.strip()
    if not text:
        raise ChatRefused("empty message")
    if len(text) > MAX_CHAT_CHARS:
        raise ChatRefused(f"message longer than {MAX_CHAT_CHARS} characters")
    if to_uid:
        room, room_id, member = to_callsign or to_uid, to_uid, to_uid
    else:
        room, room_id, member = ALL_CHAT_ROOMS, ALL_CHAT_ROOMS, ALL_CHAT_ROOMS
    a = escape_attr
    when = iso_from_ms(now_ms)
    detail = (
        f'<__chat parent="RootContactGroup" groupOwner="false" messageId="{a(message_id)}"'
        f' chatroom="{a(room)}" id="{a(room_id)}" senderCallsign="{a(sender.callsign)}">'
        f'<chatgrp uid0="{a(sender.uid)}" uid1="{a(member)}" id="{a(room_id)}"/></__chat>'
        f'<link uid="{a(sender.uid)}" type="{WEB_SA_TYPE}" relation="p-p"/>'
        f'<remarks source="BAO.F.ATAK.{a(sender.uid)}" to="{a(room_id)}" time="{when}">'
        f"{a(text)}</remarks>"
    )
    return made_event(
        f"GeoChat.{sender.uid}.{room_id}.{message_id}",
        CHAT_TYPE,
        Point(0.0, 0.0),
        detail,
        now_ms=now_ms,
        stale_ms=CHAT_STALE_MS,
        how="h-g-i-g-o",
    )


def to_web_sa(sender: Sender, now_ms: int) -> CotEvent:
    """The web operator's contact report, so ATAK users can message it directly."""
    a = escape_attr
    detail = (
        f'<contact callsign="{a(sender.callsign)}" endpoint="*:-1:stcp"/>'
        '<__group name="Cyan" role="HQ"/><takv device="browser" platform="Accord web"'
        ' os="web" version="1"/>'
    )
    return made_event(
        sender.uid,
        WEB_SA_TYPE,
        Point(0.0, 0.0),
        detail,
        now_ms=now_ms,
        stale_ms=WEB_SA_STALE_MS,
        how="h-g-i-g-o",
    )
