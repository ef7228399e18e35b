"""History out of the store, in the formats other tools read: GeoJSON, KML and raw CoT.

Each writer takes archived events and yields text chunks, so an export of a million events
streams instead of being built in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from lxml import etree

from accord.cot.errors import MalformedEvent
from accord.cot.model import UNKNOWN_VALUE, iso_from_ms
from accord.cot.xml import encode_xml
from accord.store.records import ArchivedEvent, to_event

FORMATS = ("json", "geojson", "kml", "cot")
MEDIA_TYPES = {
    "json": "application/json",
    "geojson": "application/geo+json",
    "kml": "application/vnd.google-earth.kml+xml",
    "cot": "application/xml",
}
KML_NS = "http://www.opengis.net/kml/2.2"


def summary(event: ArchivedEvent) -> dict[str, object]:
    """What a JSON listing says about one archived event (the payload is left to ``cot``)."""
    return {
        "id": event.id,
        "uid": event.uid,
        "type": event.type,
        "how": event.how,
        "time": iso_from_ms(event.time_ms),
        "start": iso_from_ms(event.start_ms),
        "stale": iso_from_ms(event.stale_ms),
        "lat": event.lat,
        "lon": event.lon,
        "hae": None if event.hae == UNKNOWN_VALUE else event.hae,
        "callsign": event.callsign,
        "groups": list(event.groups),
    }


def _feature(event: ArchivedEvent) -> dict[str, object]:
    coordinates: list[float] = [event.lon, event.lat]
    if event.hae != UNKNOWN_VALUE:
        coordinates.append(event.hae)
    properties = summary(event)
    for key in ("lat", "lon", "hae"):
        del properties[key]
    return {
        "type": "Feature",
        "id": event.id,
        "geometry": {"type": "Point", "coordinates": coordinates},
        "properties": properties,
    }


def geojson(events: Iterable[ArchivedEvent]) -> Iterator[str]:
    """A GeoJSON FeatureCollection (RFC 7946): one Point feature per event."""
    yield '{"type":"FeatureCollection","features":['
    for i, event in enumerate(events):
        yield ("," if i else "") + json.dumps(_feature(event), separators=(",", ":"))
    yield "]}\n"


def kml(events: Iterable[ArchivedEvent]) -> Iterator[str]:
    """A KML 2.2 document: one time-stamped Placemark per event (Google Earth can animate
    them with its time slider)."""
    yield f'<?xml version="1.0" encoding="UTF-8"?>\n<kml xmlns="{KML_NS}"><Document>'
    yield "<name>Accord history</name>"
    for event in events:
        mark = etree.Element("Placemark")
        etree.SubElement(mark, "name").text = event.callsign or event.uid
        etree.SubElement(mark, "description").text = f"{event.type} {event.uid}"
        etree.SubElement(etree.SubElement(mark, "TimeStamp"), "when").text = iso_from_ms(
            event.time_ms
        )
        point = etree.SubElement(mark, "Point")
        if event.hae != UNKNOWN_VALUE:
            # CoT hae is above the ellipsoid and KML "absolute" is above the geoid: tens of
            # metres apart, which a history overview can live with.
            etree.SubElement(point, "altitudeMode").text = "absolute"
            coords = f"{event.lon!r},{event.lat!r},{event.hae!r}"
        else:
            coords = f"{event.lon!r},{event.lat!r}"
        etree.SubElement(point, "coordinates").text = coords
        yield etree.tostring(mark, encoding="unicode")
    yield "</Document></kml>\n"


def cot(events: Iterable[ArchivedEvent]) -> Iterator[str]:
    """The events themselves as CoT XML, one per line, inside ``<events>`` (the shape of TAK
    Server's ``/Marti/api/cot/xml/{uid}/all``). Protobuf payloads are converted to XML."""
    yield '<?xml version="1.0" encoding="UTF-8"?>\n<events>\n'
    for event in events:
        try:
            # Re-encoded rather than pasted: a payload may be protobuf or carry its own
            # XML declaration.
            text = encode_xml(to_event(event)).decode("utf-8")
        except MalformedEvent:
            continue
        yield text + "\n"
    yield "</events>\n"


def json_lines(events: Iterable[ArchivedEvent]) -> Iterator[str]:
    for event in events:
        yield json.dumps(summary(event)) + "\n"


WRITERS = {"geojson": geojson, "kml": kml, "cot": cot}
