"""The federation v2 messages carry the field numbers of reference tak-protocol §6.3-6.4."""

from __future__ import annotations

import struct

from accord.federation.proto import fig_pb2


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _int(number: int, value: int) -> bytes:
    return _key(number, 0) + _varint(value)


def _double(number: int, value: float) -> bytes:
    return _key(number, 1) + struct.pack("<d", value)


def _bytes(number: int, value: bytes) -> bytes:
    return _key(number, 2) + _varint(len(value)) + value


def _str(number: int, value: str) -> bytes:
    return _bytes(number, value.encode())


# A small FederatedEvent, byte by byte, fields in number order (as protobuf serialises them).
GEO = (
    _int(1, 1_700_000_000_000)  # sendTime
    + _int(2, 1_700_000_000_001)  # startTime
    + _int(3, 1_700_000_060_000)  # staleTime
    + _double(4, 47.5)  # lat
    + _double(5, 8.25)  # lon
    + _double(7, 5.0)  # ce
    + _str(9, "uid-1")  # uid
    + _str(10, "a-f-G-U-C")  # type
    + _str(11, "m-g")  # coordSource (how)
    + _str(12, '<detail><contact callsign="A1"/></detail>')  # other
    + _str(16, "A1")  # screenName
    + _double(20, 3.5)  # speed
    + _str(23, "ptp-uid")  # ptpUids
    + _str(27, "Unclassified")  # access
)
FEDERATED = (
    _bytes(1, GEO)
    + _bytes(2, _int(1, 1) + _str(2, "uid-1") + _str(3, "A1"))  # contact: CREATE
    + _str(3, "Blue")  # federateGroups
    + _bytes(4, _str(1, "server-a") + _str(2, "Org A"))  # federateProvenance
    + _bytes(5, _int(1, 3) + _int(2, 1))  # federateHops
)


def _built() -> fig_pb2.FederatedEvent:
    msg = fig_pb2.FederatedEvent()
    g = msg.event
    g.sendTime, g.startTime, g.staleTime = 1_700_000_000_000, 1_700_000_000_001, 1_700_000_060_000
    g.lat, g.lon, g.ce = 47.5, 8.25, 5.0
    g.uid, g.type, g.coordSource = "uid-1", "a-f-G-U-C", "m-g"
    g.other = '<detail><contact callsign="A1"/></detail>'
    g.screenName, g.speed, g.access = "A1", 3.5, "Unclassified"
    g.ptpUids.append("ptp-uid")
    msg.contact.operation = fig_pb2.CREATE
    msg.contact.uid, msg.contact.callsign = "uid-1", "A1"
    msg.federateGroups.append("Blue")
    msg.federateProvenance.add(federationServerId="server-a", federationServerName="Org A")
    msg.federateHops.maxHops, msg.federateHops.currentHops = 3, 1
    return msg


def test_federated_event_encodes_with_the_reference_field_numbers() -> None:
    assert _built().SerializeToString() == FEDERATED


def test_hand_built_federated_event_decodes_to_the_same_message() -> None:
    assert fig_pb2.FederatedEvent.FromString(FEDERATED) == _built()


def test_subscription_identity_and_health_field_numbers() -> None:
    sub = fig_pb2.Subscription()
    sub.identity.name, sub.identity.uid, sub.identity.serverId = "n", "u", "s"
    sub.identity.type = fig_pb2.Identity.FEDERATION_TAK_CLIENT
    sub.version.major = 5
    identity = _str(1, "n") + _str(2, "u") + _int(4, 3) + _str(5, "s")
    assert sub.SerializeToString() == _bytes(1, identity) + _bytes(3, _int(1, 5))
    health = fig_pb2.ServerHealth(status=fig_pb2.ServerHealth.NOT_CONNECTED)
    assert health.SerializeToString() == _int(1, 3)
    blob = fig_pb2.BinaryBlob(type=fig_pb2.IMAGE, data=b"x", filename="f")
    assert blob.SerializeToString() == _int(1, 2) + _bytes(2, b"x") + _str(3, "f")
    rol = fig_pb2.ROL(program="announce package\n{};")
    assert rol.SerializeToString() == _str(1, "announce package\n{};")


def test_service_is_the_tak_servers_federated_channel() -> None:
    service = fig_pb2.DESCRIPTOR.services_by_name["FederatedChannel"]
    assert service.full_name == "com.atakmap.FederatedChannel"
    streams = {m.name: (m.client_streaming, m.server_streaming) for m in service.methods}
    assert streams["ClientEventStream"] == (False, True)
    assert streams["ServerEventStream"] == (True, False)
    assert streams["HealthCheck"] == (False, False)
    assert streams["ServerFederateGroupsStream"] == (False, True)
    assert streams["ClientFederateGroupsStream"] == (True, False)


def test_accord_extensions_use_field_numbers_a_tak_server_skips() -> None:
    inner = _built().SerializeToString()
    batch = fig_pb2.FederatedEvent(accordBatch=[inner, inner], accordSeq=7)
    assert batch.SerializeToString() == _int(1001, 7) + _bytes(1002, inner) * 2
    sub = fig_pb2.Subscription(accordFeatures=fig_pb2.ACCORD_BATCH | fig_pb2.ACCORD_STORE_FORWARD)
    assert sub.SerializeToString() == _int(1001, 3)
    health = fig_pb2.ServerHealth(status=fig_pb2.ServerHealth.SERVING, accordAck=9)
    health.accordFeatures = fig_pb2.ACCORD_BATCH
    assert health.SerializeToString() == _int(1, 1) + _int(1001, 9) + _int(1002, 1)
    # Protobuf readers skip fields they do not know (as the TAK Server's skips these).
    skipped = fig_pb2.FederatedEvent.FromString(_int(1003, 7) + FEDERATED)
    skipped.DiscardUnknownFields()
    assert skipped == _built()
