"""Policies and events shared by the policy tests."""

from __future__ import annotations

from accord.cot.model import CotEvent, Point
from accord.policy.model import Policy
from accord.policy.parse import decode_policy
from tests.cot.samples import make_event

NOW_MS = 1_700_000_000_000
SECRET = "0123456789abcdef0123456789abcdef"
# Inside the region, outside the base; inside the base; outside everything.
IN_REGION = Point(47.05, 8.10, 500.0, 3.0, 2.0)
IN_BASE = Point(47.0, 8.0, 450.0, 3.0, 2.0)
ELSEWHERE = Point(40.0, -100.0, 1500.0, 3.0, 2.0)

POLICY = f"""
name = "org-a->org-b"
partner = "org-b"
pseudonymise = true
pseudonym_prefix = "org-a."
secret = "{SECRET}"

[area.region]
polygon = [[47.10, 7.90], [47.10, 8.20], [46.90, 8.20], [46.90, 7.90]]

[area.base]
circle = {{ lat = 47.0, lon = 8.0, radius_m = 500 }}

[always_withhold]
types = ["b-t-f*", "t-*"]

[[rule]]
name = "uas"
types = ["a-f-A-M-H-Q*"]
areas = ["region"]
not_areas = ["base"]
max_age_s = 10
grid_m = 100
altitude_m = 10
min_interval_s = 1

[[rule]]
name = "spi"
types = ["b-m-p-s-p-i"]
not_areas = ["base"]
keep = ["link", "contact"]

[[rule]]
name = "ground"
types = ["a-f-G*"]
delay_s = 30

[[rule]]
name = "hostile-in-base"
types = ["a-h-*"]
areas = ["base"]
action = "withhold"

[[rule]]
name = "hostile"
types = ["a-h-*"]
"""


def policy(text: str = POLICY) -> Policy:
    return decode_policy(text)


def event(
    type_: str = "a-f-A-M-H-Q",
    point: Point = IN_REGION,
    *,
    uid: str = "uas-1",
    detail: str = "",
    time_ms: int = NOW_MS,
) -> CotEvent:
    return make_event(uid, type_, point=point, detail=detail, now_ms=time_ms, stale_s=10)
