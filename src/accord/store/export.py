"""History out of the store, in the formats other tools read: GeoJSON, KML and raw CoT.

Each :class:`Writer` turns stored events into text pieces, so an export of a million events
streams instead of being built in memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from lxml import etree

from accord.cot.errors import MalformedEvent
from accord.cot.model import UNKNOWN_VALUE, iso_from_ms
from accord.cot.xml import encode_xml
from accord.store.records import StoredEvent, to_event

MEDIA_TYPES = {
    "json": "application/json",
    "jsonl": "application/jsonl",
    "geojson": "application/geo+json",
    "kml": "application/vnd.google-earth.kml+xml",
    "cot": "application/xml",
}
KML_NS = "http://www.opengis.net/kml/2.2"


def summary(event: StoredEvent) -> dict[str, object]:
    """What a JSON listing says about one stored event (the payload is left to ``cot``)."""
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


def _feature(event: StoredEvent) -> dict[str, object]:
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


@dataclass(frozen=True, slots=True)
class Writer:
    """One export format: a head, one piece per event, a tail. Pieces are text, so an export
    can be written page by page without holding the whole history."""

    head: str
    item: Callable[[StoredEvent, bool], str]  # (event, is_first) -> text
    tail: str

    def render(self, events: Iterable[StoredEvent]) -> Iterator[str]:
        yield self.head
        for i, event in enumerate(events):
            piece = self.item(event, i == 0)
            if piece:
                yield piece
        yield self.tail


def _geojson_item(event: StoredEvent, first: bool) -> str:
    return ("" if first else ",") + json.dumps(_feature(event), separators=(",", ":"))


def _kml_item(event: StoredEvent, first: bool) -> str:
    mark = etree.Element("Placemark")
    etree.SubElement(mark, "name").text = event.callsign or event.uid
    etree.SubElement(mark, "description").text = f"{event.type} {event.uid}"
    etree.SubElement(etree.SubElement(mark, "TimeStamp"), "when").text = iso_from_ms(event.time_ms)
    point = etree.SubElement(mark, "Point")
    if event.hae != UNKNOWN_VALUE:
        # CoT hae is above the ellipsoid and KML "absolute" is above the geoid: tens of
        # metres apart, which a history overview can live with.
        etree.SubElement(point, "altitudeMode").text = "absolute"
        coords = f"{event.lon!r},{event.lat!r},{event.hae!r}"
    else:
        coords = f"{event.lon!r},{event.lat!r}"
    etree.SubElement(point, "coordinates").text = coords
    return etree.tostring(mark, encoding="unicode")


def _cot_item(event: StoredEvent, first: bool) -> str:
    try:
        # Re-encoded rather than pasted: a payload may be protobuf or carry its own
        # XML declaration.
        return encode_xml(to_event(event)).decode("utf-8") + "\n"
    except MalformedEvent:
        return ""


def _json_item(event: StoredEvent, first: bool) -> str:
    return json.dumps(summary(event)) + "\n"


WRITERS = {
    # RFC 7946 FeatureCollection, one Point feature per event.
    "geojson": Writer('{"type":"FeatureCollection","features":[', _geojson_item, "]}\n"),
    # KML 2.2: one time-stamped Placemark per event (Google Earth's time slider animates them).
    "kml": Writer(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<kml xmlns="{KML_NS}"><Document>'
        "<name>Accord history</name>",
        _kml_item,
        "</Document></kml>\n",
    ),
    # The events themselves, one per line inside <events> (TAK Server's
    # /Marti/api/cot/xml/{uid}/all shape); protobuf payloads converted to XML.
    "cot": Writer('<?xml version="1.0" encoding="UTF-8"?>\n<events>\n', _cot_item, "</events>\n"),
    # JSON lines: one summary object per event (for jq and scripts).
    "jsonl": Writer("", _json_item, ""),
}
