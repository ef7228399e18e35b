"""``accord history`` against a real data directory."""

from __future__ import annotations

import json
from pathlib import Path

from lxml import etree

from accord.cot.xml import decode_xml, encode_xml
from accord.store.opening import open_store
from accord.store.records import StoredEvent
from tests.cot.samples import sa_event
from tests.e2e.test_cli import accord

NOW_MS = 1_780_000_000_000


async def fill(data_dir: Path, count: int) -> list[StoredEvent]:
    events = [
        StoredEvent.of(
            decode_xml(encode_xml(sa_event(f"uid-{i}", f"CS{i}", now_ms=NOW_MS + i * 1000))),
            ("A",) if i % 2 else ("B",),
        )
        for i in range(count)
    ]
    store = await open_store("", data_dir)
    await store.write_events(events, [])
    await store.close()
    return events


async def test_history_exports_every_page_in_each_format(tmp_path: Path) -> None:
    await fill(tmp_path, 7)
    lines = accord("history", "--data-dir", str(tmp_path), "--all", "--limit", "3")
    assert lines.returncode == 0, lines.stderr
    rows = [json.loads(line) for line in lines.stdout.splitlines()]
    assert [r["uid"] for r in rows] == [f"uid-{i}" for i in range(7)]
    assert "7 events" in lines.stderr

    geo = accord("history", "--data-dir", str(tmp_path), "--all", "--format", "geojson")
    features = json.loads(geo.stdout)["features"]
    assert [f["properties"]["callsign"] for f in features] == [f"CS{i}" for i in range(7)]

    out = tmp_path / "h.cot"
    cot = accord(
        "history", "--data-dir", str(tmp_path), "--uid", "uid-3", "--format", "cot", "-o", str(out)
    )
    assert cot.returncode == 0, cot.stderr
    events = etree.fromstring(out.read_bytes()).findall("event")
    assert [e.get("uid") for e in events] == ["uid-3"]

    one_page = accord("history", "--data-dir", str(tmp_path), "--limit", "2")
    assert len(one_page.stdout.splitlines()) == 2
    assert "more with --all" in one_page.stderr


async def test_history_filters_by_time(tmp_path: Path) -> None:
    events = await fill(tmp_path, 5)
    since = events[2].time_ms
    answer = accord(
        "history", "--data-dir", str(tmp_path), "--since", str(since), "--format", "jsonl"
    )
    assert [json.loads(line)["uid"] for line in answer.stdout.splitlines()] == [
        "uid-2",
        "uid-3",
        "uid-4",
    ]


def test_history_refuses_a_malformed_bbox_with_the_accepted_form(tmp_path: Path) -> None:
    answer = accord("history", "--data-dir", str(tmp_path), "--bbox", "north-ish")
    assert answer.returncode == 2
    assert "south,west,north,east" in answer.stderr
    assert "Traceback" not in answer.stderr
