"""``/metrics``: the live numbers in Prometheus's text format (prometheus_client).

Nothing is counted here: a custom collector reads, at each scrape, the counters the server
keeps anyway (:class:`Counters`, each session's :class:`Tally` via :class:`Sessions`) and the
optional reporters in :class:`Probes`. So a server nobody scrapes pays nothing for this.

Per-listener families (``listener`` = tcp, tls, udp) break down what the global counters
sum up; the global counters they break down are not repeated.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import fields

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from accord import __version__
from accord.cot.errors import Malformation
from accord.domain.metrics import Counters
from accord.domain.views import ListenerView, Probes, Sample, Sessions

PREFIX = "accord_"
# Broken down per listener below (accord_events_*), so not exported again as totals.
_BROKEN_DOWN = frozenset(
    {
        "events_in",
        "events_delivered",
        "malformed",
        "rate_limited",
        "queue_dropped",
        "queue_coalesced",
        "udp_malformed",
    }
)
_COUNTER_HELP = {
    "sessions_opened": "Streaming sessions opened",
    "sessions_closed": "Streaming sessions closed",
    "connections_refused": "Connections refused for being over max_connections",
    "tls_handshake_failed": "TLS handshakes that failed or presented an unusable certificate",
    "framing_lost": "Streams closed because their framing could not be recovered",
    "blocked_closed": "Sessions closed for not reading (socket full for blocked_timeout_s)",
    "pings": "Pings (t-x-c-t) answered",
    "control_consumed": "Control events consumed by the server",
    "udp_in": "UDP datagrams received",
    "auth_failed": "Plain-TCP <auth> sign-ins missing or wrong",
    "enrolled": "Client certificates signed through the enrollment API",
    "enroll_refused": "Enrollment requests refused for a bad CSR",
    "enroll_auth_failed": "Enrollment requests with a wrong user name or password",
    "enroll_throttled": "Enrollment requests refused for too many wrong passwords",
    "http_timed_out": "HTTP requests closed (408) for headers or a body that came too slowly",
}


class AccordCollector(Collector):
    """Reads the live numbers at scrape time; holds no state of its own."""

    def __init__(self, sessions: Sessions, counters: Counters, probes: Probes) -> None:
        self.sessions = sessions
        self.counters = counters
        self.probes = probes

    def collect(self) -> Iterable[Metric]:
        info = GaugeMetricFamily(PREFIX + "build_info", "Accord's version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield from _listener_families(self.sessions.listeners())
        backlog = self.probes.history.backlog() if self.probes.history is not None else None
        yield GaugeMetricFamily(
            PREFIX + "history_queue_events",
            "Events routed but not yet written to history (0 without a history writer)",
            value=backlog.queued_events if backlog else 0,
        )
        yield GaugeMetricFamily(
            PREFIX + "history_write_lag_seconds",
            "How long the oldest event not yet written to history has waited",
            value=backlog.lag_s if backlog else 0.0,
        )
        snapshot = self.counters.snapshot()
        for f in fields(Counters):
            if f.name in _BROKEN_DOWN:
                continue
            yield CounterMetricFamily(
                PREFIX + f.name, _COUNTER_HELP.get(f.name, f.name), value=snapshot[f.name]
            )
        # One family per name across sources: each drone feed reports its own samples.
        yield from _families(s for source in list(self.probes.sources) for s in source.samples())


def _listener_families(listeners: list[ListenerView]) -> Iterator[Metric]:
    by = ["listener"]
    sessions = GaugeMetricFamily(PREFIX + "sessions", "Streaming sessions connected", labels=by)
    received = CounterMetricFamily(
        PREFIX + "events_received", "Events routed from clients (after the rate limit)", labels=by
    )
    delivered = CounterMetricFamily(
        PREFIX + "events_delivered", "Events taken for clients (written or queued)", labels=by
    )
    dropped = CounterMetricFamily(
        PREFIX + "events_dropped",
        "Events dropped: over the input rate, or the client's send queue full",
        labels=["listener", "reason"],
    )
    coalesced = CounterMetricFamily(
        PREFIX + "events_coalesced",
        "Queued position reports replaced by a newer one of the same uid (queue full)",
        labels=by,
    )
    malformed = CounterMetricFamily(
        PREFIX + "events_malformed",
        "Events refused as malformed (stream kept), by reason",
        labels=["listener", "reason"],
    )
    queued = GaugeMetricFamily(
        PREFIX + "send_queue_events", "Events waiting in send queues, summed", labels=by
    )
    fullest = GaugeMetricFamily(
        PREFIX + "send_queue_max_events", "Events waiting in the fullest send queue", labels=by
    )
    buffered = GaugeMetricFamily(
        PREFIX + "write_buffer_bytes", "Bytes written but not yet taken by the kernel", labels=by
    )
    for view in listeners:
        name, tally = [view.name], view.tally
        received.add_metric(name, tally.events_in)
        malformed_by = {reason.value: 0 for reason in Malformation} | dict(view.malformed)
        for reason, count in malformed_by.items():
            malformed.add_metric([view.name, reason], count)
        if view.name == "udp":
            continue  # no sessions: nothing is sent, queued or dropped
        sessions.add_metric(name, view.sessions)
        delivered.add_metric(name, tally.events_out)
        dropped.add_metric([view.name, "rate_limited"], tally.rate_limited)
        dropped.add_metric([view.name, "queue_full"], tally.queue_dropped)
        coalesced.add_metric(name, tally.queue_coalesced)
        queued.add_metric(name, view.queued_events)
        fullest.add_metric(name, view.max_queued_events)
        buffered.add_metric(name, view.write_buffer_bytes)
    yield from (sessions, received, delivered, dropped, coalesced, malformed)
    yield from (queued, fullest, buffered)


def _families(samples: Iterable[Sample]) -> Iterator[Metric]:
    """Group a source's samples by name into metric families."""
    grouped: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        grouped[sample.name].append(sample)
    for name, group in grouped.items():
        first = group[0]
        labels = [k for k, _ in first.labels]
        family: GaugeMetricFamily | CounterMetricFamily
        if first.kind == "counter":
            family = CounterMetricFamily(
                PREFIX + name.removesuffix("_total"), first.help, labels=labels
            )
        else:
            family = GaugeMetricFamily(PREFIX + name, first.help, labels=labels)
        for sample in group:
            family.add_metric([v for _, v in sample.labels], sample.value)
        yield family


def registry(sessions: Sessions, counters: Counters, probes: Probes) -> CollectorRegistry:
    """Accord's numbers plus the process's own (CPU, memory, open files)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(AccordCollector(sessions, counters, probes))
    ProcessCollector(registry=reg)
    return reg


def exposition(reg: CollectorRegistry, request: Request) -> Response:
    """The scrape answer, in the format the scraper asked for (text, or OpenMetrics)."""
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(reg), media_type=None, headers={"Content-Type": content_type})
