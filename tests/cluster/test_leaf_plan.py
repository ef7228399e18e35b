"""The leaf catch-up's pure parts: the uplink's state from probes, and what a base node
publishes again or delivers after a cut; and ``[cluster] hub_domain``."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.cluster.leaf import LinkWatch, Plan, Stored, hub_conf, leaf_conf, reconcile
from accord.cluster.natsd import NodeSpec
from accord.config import ConfigError, load

ME, OTHER, MAIN = "b1", "b2", "h"


def test_link_watch_reports_each_cut_and_heal_once() -> None:
    watch = LinkWatch()
    assert [watch.probe(ok) for ok in (True, True, False, False, True, True)] == [
        "healed", None, "cut", None, "healed", None,
    ]  # fmt: skip
    assert (watch.cuts, watch.heals, watch.up) == (1, 2, True)


def test_a_base_started_while_cut_catches_up_at_its_first_heal() -> None:
    watch = LinkWatch()
    assert watch.probe(False) == "cut"
    assert watch.probe(True) == "healed"


def test_same_event_on_both_sides_needs_nothing() -> None:
    same = {"s": Stored(ME, "x.1", 10)}
    assert reconcile(same, dict(same), ME) == Plan()


def test_own_newer_sa_is_published_again_and_main_newer_is_delivered() -> None:
    local = {
        "mine": Stored(ME, "b1.5", 200),  # sent while cut
        "theirs": Stored(MAIN, "h.1", 100),  # the main side's, before the cut
        "new-here": Stored(ME, "b1.6", 210),  # a uid the main side never had
    }
    remote = {
        "mine": Stored(ME, "b1.4", 100),
        "theirs": Stored(MAIN, "h.9", 300),  # sent while cut
        "new-there": Stored(MAIN, "h.10", 310),
    }
    plan = reconcile(local, remote, ME)
    assert plan.republish == ["mine", "new-here"]
    assert plan.deliver == ["new-there", "theirs"]


def test_another_base_nodes_newer_sa_is_that_nodes_to_publish() -> None:
    local = {"s": Stored(OTHER, "b2.3", 200)}
    remote = {"s": Stored(OTHER, "b2.2", 100)}
    assert reconcile(local, remote, ME) == Plan()
    assert reconcile(local, remote, OTHER).republish == ["s"]


def test_an_older_main_side_copy_is_not_delivered_over_a_newer_local_one() -> None:
    local = {"s": Stored(MAIN, "h.2", 200)}  # heard live before the cut
    remote = {"s": Stored(MAIN, "h.1", 100)}
    assert reconcile(local, remote, ME) == Plan()


def test_nats_configs_name_the_domain_and_the_leaf_remote(tmp_path: Path) -> None:
    spec = NodeSpec("leaf1", 4222, 6222, 8222, tmp_path / "leaf1")
    leaf = leaf_conf(spec, domain="base1", remotes=["nats-leaf://hub:7422"])
    assert 'domain: "base1"' in leaf
    assert '"nats-leaf://hub:7422"' in leaf
    assert 'reconnect: "1s"' in leaf
    peer = NodeSpec("n2", 4223, 6223, 8223, tmp_path / "n2")
    hub = hub_conf(spec, domain="hub", leaf_port=7422, peers=[spec, peer])
    assert "leafnodes { listen: 127.0.0.1:7422, no_advertise: false }" in hub
    assert '"nats://127.0.0.1:6223"' in hub
    assert '6222"' not in hub.split("routes")[1]  # not routed to itself


def test_hub_domain_is_read(tmp_path: Path) -> None:
    path = tmp_path / "accord.toml"
    path.write_text('[cluster]\nurls = ["nats://leaf:4222"]\nhub_domain = "hub"\n')
    assert load(path, environ={}).cluster.hub_domain == "hub"


@pytest.mark.parametrize("value", ['"a.b"', '"*"', "3"])
def test_bad_hub_domain_is_a_clear_error(tmp_path: Path, value: str) -> None:
    path = tmp_path / "accord.toml"
    path.write_text(f'[cluster]\nurls = ["nats://leaf:4222"]\nhub_domain = {value}\n')
    with pytest.raises(ConfigError, match="hub_domain must be a JetStream domain name"):
        load(path, environ={})
