"""GeoChat built for the web app is what ATAK sends, and routing treats it so."""

from __future__ import annotations

import pytest

from accord.cot.xml import decode_xml, encode_xml
from accord.domain.geochat import ChatRefused, Sender, to_chat, to_web_sa
from accord.domain.picture import to_feature
from accord.domain.routing import ALL_CHAT_ROOMS, CHAT_TYPE

NOW = 1_796_000_000_000
ME = Sender("WEB-alice-1", "alice (web)")


def test_a_room_message_is_an_atak_geochat_to_all_chat_rooms() -> None:
    event = decode_xml(encode_xml(to_chat(ME, " hello ", NOW, "m1")))
    assert event.type == CHAT_TYPE
    assert event.how == "h-g-i-g-o"
    assert event.uid == "GeoChat.WEB-alice-1.All Chat Rooms.m1"
    assert event.detail.chat is not None
    assert event.detail.chat.chatroom == ALL_CHAT_ROOMS
    assert "BAO.F.ATAK.WEB-alice-1" in event.detail.xml
    feature = to_feature(event, NOW)
    assert (feature["text"], feature["from"], feature["from_uid"]) == ("hello", ME.callsign, ME.uid)


def test_a_direct_message_names_its_recipient_for_routing() -> None:
    event = decode_xml(
        encode_xml(to_chat(ME, "hi", NOW, "m2", to_uid="ANDROID-9", to_callsign="BRAVO"))
    )
    assert event.detail.chat is not None
    assert event.detail.chat.chatroom == "BRAVO"
    assert event.detail.chat.members == ("ANDROID-9",)


def test_hostile_text_and_names_are_escaped_into_the_xml() -> None:
    hostile = '"/><x>&</remarks>'
    sender = Sender('WEB-"x"', hostile)
    event = decode_xml(encode_xml(to_chat(sender, hostile, NOW, "m3")))
    feature = to_feature(event, NOW)
    assert feature["text"] == hostile
    assert feature["from"] == hostile


@pytest.mark.parametrize("text", ["", "   ", "x" * 1001])
def test_empty_or_too_long_messages_are_refused(text: str) -> None:
    with pytest.raises(ChatRefused):
        to_chat(ME, text, NOW, "m4")


def test_the_web_operators_contact_report_makes_it_a_contact_without_a_position() -> None:
    event = decode_xml(encode_xml(to_web_sa(ME, NOW)))
    assert event.detail.contact is not None
    assert event.detail.contact.callsign == ME.callsign
    assert event.detail.contact.endpoint
    assert event.point.ce == 9999999.0
