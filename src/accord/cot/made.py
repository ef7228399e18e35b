"""Events made here (alerts, zones, chat, bridge tracks): the one way to build one, so every
maker stamps time, start and stale alike, and the one ``t-x-d-d`` that removes an item."""

from __future__ import annotations

from accord.cot.model import CotEvent, Point
from accord.cot.xml import detail_from_xml, escape_attr

DELETE_TYPE = "t-x-d-d"
NOWHERE = Point()  # 0,0 with unknown height and errors: a delete needs no position


def made_event(
    uid: str, type_: str, point: Point, detail_xml: str, *, now_ms: int, stale_ms: int, how: str
) -> CotEvent:
    """An event made at ``now_ms`` (time and start), stale ``stale_ms`` later."""
    return CotEvent(
        uid=uid,
        type=type_,
        how=how,
        time=now_ms,
        start=now_ms,
        stale=now_ms + stale_ms,
        point=point,
        detail=detail_from_xml(detail_xml),
    )


def delete_event(
    uid: str, kind: str, *, now_ms: int, stale_ms: int, how: str = "m-g", point: Point = NOWHERE
) -> CotEvent:
    """``t-x-d-d`` with ``<__forcedelete>``: clients remove ``uid`` (of type ``kind``), even
    one they did not make themselves. Its own uid is ``<uid>.delete``."""
    return made_event(
        f"{uid}.delete",
        DELETE_TYPE,
        point,
        f'<link uid="{escape_attr(uid)}" type="{escape_attr(kind)}" relation="none"/>'
        "<__forcedelete/>",
        now_ms=now_ms,
        stale_ms=stale_ms,
        how=how,
    )
