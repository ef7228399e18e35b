"""CoT load generator: N simulated TAK clients against one server, JSON report on stdout.

Every client connects (TCP or TLS), sends one SA so the server knows it, then — if it is a
sender — keeps sending SA events (type a-f-G-U-C) at a fixed open-loop rate.  Each event
carries ``<bench v="RUN:CLIENT:SEND_US"/>`` in its ``<detail>``; every client reads all it
receives and scans the raw bytes for bench elements of this run.  Scanning bytes (rather than
decoding events) keeps the reader cheap — the loadgen shares two cores with the server — and
works the same for XML and TAK protobuf, since the protobuf ``xmlDetail`` string carries the
bench element verbatim.

Timeline, all clients together:  connect + initial SA  ->  warmup  ->  measurement window.
Only events *received* inside the window are counted; their latency is receive time minus
the send time in the bench element (same host, same clock).

The XML path is stdlib only.  The protobuf path (TAK protocol v1, negotiated over the stream)
needs ``accord.cot.connection.StreamConnection`` and is only for Accord.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import resource
import signal
import ssl
import sys
import time
import uuid
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from procstat import CLK_TCK, proc_cpu_ticks, proc_fd_count, proc_rss_kib

SA_TYPE = "a-f-G-U-C"
CONNECT_ATTEMPTS = 3
WRITE_BUFFER_LIMIT_BYTES = 4 * 1024 * 1024  # beyond this a sender skips a beat (counted)
NEGOTIATION_TIMEOUT_S = 10.0


# ---------------------------------------------------------------------------------------
# Options


@dataclass(frozen=True)
class Options:
    host: str
    port: int
    clients: int
    senders: int
    rate: float
    duration_s: float
    warmup_s: float
    tls: bool
    ca: str | None
    cert: str | None
    key: str | None
    tls_hostname: str | None
    wire: str  # "xml" or "protobuf"
    xml_decl: bool
    stale_s: int
    initial_sa: bool
    connect_concurrency: int
    connect_timeout_s: float
    connect_deadline_s: float
    server_pid: int | None
    ready_file: str | None
    run_id: str
    label: str
    uvloop: bool
    probes: int


def parse_args(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--clients", type=int, default=2, help="connections to open")
    p.add_argument(
        "--senders",
        type=int,
        default=-1,
        help="how many of the clients send at --rate (default: all); the rest only read",
    )
    p.add_argument("--rate", type=float, default=1.0, help="events/s per sender; 0 = silent")
    p.add_argument("--duration", type=float, default=10.0, help="measurement window, s")
    p.add_argument("--warmup", type=float, default=2.0, help="s of sending before measuring")
    p.add_argument("--tls", action="store_true")
    p.add_argument("--ca", help="CA bundle to verify the server (TLS)")
    p.add_argument("--cert", help="client certificate PEM (TLS)")
    p.add_argument("--key", help="client private key PEM (TLS)")
    p.add_argument(
        "--tls-hostname",
        help="check the server certificate against this name (default: chain only)",
    )
    p.add_argument(
        "--probes",
        type=int,
        default=50,
        help="clients that time every event they receive (the rest only count, at C speed, "
        "so that a loadgen reading a million events/s does not become the bottleneck); "
        "-1 = all",
    )
    p.add_argument("--format", dest="wire", choices=["xml", "protobuf"], default="xml")
    p.add_argument(
        "--no-xml-decl",
        dest="xml_decl",
        action="store_false",
        help="omit the <?xml ...?> declaration ATAK puts before each event",
    )
    p.add_argument(
        "--no-initial-sa",
        dest="initial_sa",
        action="store_false",
        help="do not announce each client with an SA on connect (idle-session tests: "
        "N announcements cost the server N*(N-1) deliveries)",
    )
    p.add_argument("--stale", type=int, default=30, help="SA stale time, s after send")
    p.add_argument("--connect-concurrency", type=int, default=200)
    p.add_argument("--connect-timeout", type=float, default=30.0)
    p.add_argument("--connect-deadline", type=float, default=120.0, help="s to connect all clients")
    p.add_argument("--server-pid", type=int, help="sample RSS/CPU of this process tree")
    p.add_argument(
        "--ready-file",
        help="write the connected-client count here once every client is connected",
    )
    p.add_argument("--run-id", default=uuid.uuid4().hex[:8])
    p.add_argument("--label", default="", help="copied into the report")
    p.add_argument("--no-uvloop", dest="uvloop", action="store_false", help="plain asyncio loop")
    a = p.parse_args(argv)
    senders = a.clients if a.senders < 0 else min(a.senders, a.clients)
    if a.rate < 0 or a.duration <= 0 or a.warmup < 0 or a.clients < 1:
        p.error("need clients >= 1, rate >= 0, duration > 0, warmup >= 0")
    if not re.fullmatch(r"[A-Za-z0-9]+", a.run_id):
        p.error("--run-id must be alphanumeric")
    return Options(
        host=a.host,
        port=a.port,
        clients=a.clients,
        senders=senders,
        rate=a.rate,
        duration_s=a.duration,
        warmup_s=a.warmup,
        tls=a.tls,
        ca=a.ca,
        cert=a.cert,
        key=a.key,
        tls_hostname=a.tls_hostname,
        wire=a.wire,
        xml_decl=a.xml_decl,
        stale_s=a.stale,
        initial_sa=a.initial_sa,
        connect_concurrency=a.connect_concurrency,
        connect_timeout_s=a.connect_timeout,
        connect_deadline_s=a.connect_deadline,
        server_pid=a.server_pid,
        ready_file=a.ready_file,
        run_id=a.run_id,
        label=a.label,
        uvloop=a.uvloop,
        probes=a.probes,
    )


# ---------------------------------------------------------------------------------------
# Events


def _iso_ms(t: float) -> str:
    """CoT time: ISO 8601 UTC with milliseconds, as ATAK writes it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


@dataclass(frozen=True)
class SaTemplate:
    """One client's SA, rendered per send with fresh times and bench stamp."""

    run_id: str
    index: int
    stale_s: int
    xml_decl: bool
    lat: float
    lon: float

    @property
    def uid(self) -> str:
        return f"bench-{self.run_id}-{self.index}"

    @property
    def callsign(self) -> str:
        return f"B{self.run_id}-{self.index}"

    def render(self, now: float) -> bytes:
        t = _iso_ms(now)
        stale = _iso_ms(now + self.stale_s)
        send_us = int(now * 1_000_000)
        decl = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' if self.xml_decl else ""
        # Same detail children as ATAK's SA (takv, contact, uid, __group, status, track), so
        # servers that key on them (taky's TAKUser, Accord's contacts) treat us as a user.
        return (
            f'{decl}<event version="2.0" uid="{self.uid}" type="{SA_TYPE}" how="m-g" '
            f'time="{t}" start="{t}" stale="{stale}">'
            f'<point lat="{self.lat:.6f}" lon="{self.lon:.6f}" hae="10.0" ce="9999999.0" '
            f'le="9999999.0"/><detail>'
            f'<takv os="34" version="4.10.0" device="loadgen" platform="ATAK-CIV"/>'
            f'<contact callsign="{self.callsign}" endpoint="*:-1:stcp"/>'
            f'<uid Droid="{self.callsign}"/><__group name="Cyan" role="Team Member"/>'
            f'<status battery="100"/><track course="0.0" speed="0.0"/>'
            f'<bench v="{self.run_id}:{self.index}:{send_us}"/>'
            f"</detail></event>"
        ).encode()


class ProtobufCodec:
    """TAK protocol v1 through Accord's sans-IO StreamConnection (imported lazily).

    Accord's CotEvent has no builder we can rely on here, so each outgoing SA is rendered as
    XML and decoded by a spare XML-mode StreamConnection; the negotiated connection then
    encodes it as a 0xBF-framed TakMessage.
    """

    def __init__(self) -> None:
        try:
            from accord.cot import connection as accord_connection
        except ImportError as exc:  # the protobuf path exists only for Accord
            raise SystemExit(
                f"--format protobuf needs accord.cot.connection importable ({exc})"
            ) from exc
        self._mod = accord_connection

    def new_connection(self) -> Any:
        return self._mod.StreamConnection(self._mod.Role.CLIENT)

    def is_event(self, item: object) -> bool:
        return not isinstance(item, (self._mod.NeedData, self._mod.Closed))

    def is_closed(self, item: object) -> bool:
        return isinstance(item, self._mod.Closed)

    def to_event(self, parser: Any, xml: bytes) -> Any:
        parser.receive_data(xml, time.time())
        item = parser.next_event()
        if not self.is_event(item):
            raise RuntimeError(f"could not decode own SA through accord: {item!r}")
        return item


# ---------------------------------------------------------------------------------------
# Statistics


@dataclass
class Stats:
    """Counters shared by every client of this process (single-threaded: no locks)."""

    measuring: bool = False
    sent: int = 0
    sent_in_window: int = 0
    send_skipped: int = 0
    delivered: int = 0
    echoed: int = 0
    rx_bytes: int = 0
    latencies_us: array[int] = field(default_factory=lambda: array("q"))
    connect_failures: int = 0
    disconnects: int = 0
    max_lag_s: float = 0.0
    protocol_errors: list[str] = field(default_factory=list)


def bench_pattern(run_id: str) -> re.Pattern[bytes]:
    # Either quote: a server may re-serialise the detail (e.g. into protobuf xmlDetail).
    return re.compile(rb"<bench v=[\"']" + run_id.encode() + rb":(\d+):(\d+)[\"']")


BENCH_MARK = b"<bench v="
# Longest bench element we could split across two reads; the scanner keeps this many bytes.
SCAN_TAIL_BYTES = 96


class BenchClient(asyncio.Protocol):
    """One simulated TAK client: reads everything, scans it for bench stamps."""

    def __init__(
        self,
        template: SaTemplate,
        stats: Stats,
        pattern: re.Pattern[bytes],
        codec: ProtobufCodec | None,
        probe: bool = True,
    ) -> None:
        self.template = template
        self.probe = probe
        self.stats = stats
        self.pattern = pattern
        self.codec = codec
        self.transport: asyncio.Transport | None = None
        self.tail = b""
        self.closed = asyncio.get_running_loop().create_future()
        self.negotiated = asyncio.get_running_loop().create_future()
        self.conn: Any = codec.new_connection() if codec else None
        self.parser: Any = codec.new_connection() if codec else None
        if codec is None:
            self.negotiated.set_result(None)  # XML needs no negotiation

    # -- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.stats.rx_bytes += len(data)
        if self.conn is not None and not self.negotiated.done():
            self._negotiate(data)
        self._scan(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)
        if not self.negotiated.done():
            self.negotiated.set_exception(ConnectionError("closed before negotiation"))

    # -- receive path ---------------------------------------------------------------------
    def _scan(self, data: bytes) -> None:
        if not self.probe:
            self._count(data)
            return
        buf = self.tail + data if self.tail else data
        last_end = 0
        if self.stats.measuring:
            now_us = int(time.time() * 1_000_000)
            me = self.template.index
            lat = self.stats.latencies_us
            for m in self.pattern.finditer(buf):
                last_end = m.end()
                if int(m.group(1)) == me:
                    self.stats.echoed += 1
                    continue
                self.stats.delivered += 1
                lat.append(now_us - int(m.group(2)))
        else:
            for m in self.pattern.finditer(buf):
                last_end = m.end()
        # Keep only what could be the start of a bench element cut by this read.
        self.tail = buf[max(last_end, len(buf) - SCAN_TAIL_BYTES) :]

    def _count(self, data: bytes) -> None:
        """Count bench stamps without parsing them (non-probe clients)."""
        buf = self.tail + data if self.tail else data
        if self.stats.measuring:
            self.stats.delivered += buf.count(BENCH_MARK)
        # A cut marker can only be in the last len-1 bytes, and no whole one is there.
        self.tail = buf[-(len(BENCH_MARK) - 1) :]

    def _negotiate(self, data: bytes) -> None:
        """Feed the sans-IO connection until it reports the protobuf wire format."""
        assert self.codec is not None
        assert self.transport is not None
        self.conn.receive_data(data, time.time())
        item: object = None
        for _ in range(100_000):  # bounded: each pass consumes input or stops
            try:
                item = self.conn.next_event()
            except Exception as exc:  # MalformedEvent: skip it, as a TAK client would
                self.stats.protocol_errors.append(repr(exc)[:200])
                continue
            if not self.codec.is_event(item):
                break
        out = self.conn.data_to_send()
        if out:
            self.transport.write(out)
        if self.codec.is_closed(item):
            self.negotiated.set_exception(ConnectionError(f"closed: {item!r}"))
        elif self.conn.wire_format.name == "PROTOBUF":
            self.negotiated.set_result(None)

    # -- send path ------------------------------------------------------------------------
    def send_sa(self) -> bool:
        """Send one SA now; False if the socket is backed up and the beat was skipped."""
        t = self.transport
        if t is None or t.is_closing():
            return False
        if t.get_write_buffer_size() > WRITE_BUFFER_LIMIT_BYTES:
            self.stats.send_skipped += 1
            return False
        xml = self.template.render(time.time())
        if self.codec is None:
            t.write(xml)
        else:
            t.write(self.conn.send(self.codec.to_event(self.parser, xml)))
        self.stats.sent += 1
        if self.stats.measuring:
            self.stats.sent_in_window += 1
        return True


# ---------------------------------------------------------------------------------------
# Server process sampling


class ServerSampler:
    """CPU% over the window and RSS (end and peak, sampled every second)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_rss_kib = 0
        self._t0 = 0.0
        self._ticks0 = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._ticks0 = proc_cpu_ticks(self.pid)
        self._task = asyncio.get_running_loop().create_task(self._poll_rss())

    async def _poll_rss(self) -> None:
        while True:
            self.peak_rss_kib = max(self.peak_rss_kib, proc_rss_kib(self.pid))
            await asyncio.sleep(1.0)

    def stop(self) -> dict[str, float | int]:
        wall = time.monotonic() - self._t0
        ticks = proc_cpu_ticks(self.pid) - self._ticks0
        if self._task:
            self._task.cancel()
        rss = proc_rss_kib(self.pid)
        return {
            "server_cpu_pct": round(100.0 * ticks / CLK_TCK / wall, 1) if wall > 0 else 0.0,
            "server_rss_mib": round(rss / 1024, 1),
            "server_peak_rss_mib": round(max(rss, self.peak_rss_kib) / 1024, 1),
            "server_fds": proc_fd_count(self.pid),
        }


# ---------------------------------------------------------------------------------------
# Orchestration


def raise_nofile(needed: int) -> int:
    """Lift RLIMIT_NOFILE so one process can hold `needed` sockets; returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + 256
    if want > hard:
        with contextlib.suppress(ValueError, OSError):  # raising hard needs root
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def make_ssl_context(opts: Options) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=opts.ca)
    # Loopback benchmark: verify the chain, but the server cert's name rarely says 127.0.0.1.
    ctx.check_hostname = opts.tls_hostname is not None
    if opts.cert:
        ctx.load_cert_chain(opts.cert, opts.key)
    return ctx


async def connect_one(
    opts: Options,
    factory: Callable[[], BenchClient],
    ctx: ssl.SSLContext | None,
    stats: Stats,
) -> BenchClient | None:
    loop = asyncio.get_running_loop()
    for attempt in range(CONNECT_ATTEMPTS):
        try:
            async with asyncio.timeout(opts.connect_timeout_s):
                _, client = await loop.create_connection(
                    factory,
                    opts.host,
                    opts.port,
                    ssl=ctx,
                    server_hostname=(opts.tls_hostname or opts.host) if ctx else None,
                )
                await asyncio.wait_for(client.negotiated, NEGOTIATION_TIMEOUT_S)
            return client
        except (OSError, TimeoutError, ConnectionError, ssl.SSLError) as exc:
            if attempt == CONNECT_ATTEMPTS - 1:
                stats.connect_failures += 1
                stats.protocol_errors.append(f"connect: {exc!r}"[:200])
            else:
                await asyncio.sleep(0.2 * (attempt + 1))
    return None


async def connect_all(opts: Options, stats: Stats) -> list[BenchClient]:
    codec = ProtobufCodec() if opts.wire == "protobuf" else None
    ctx = make_ssl_context(opts) if opts.tls else None
    pattern = bench_pattern(opts.run_id)
    rng = random.Random(opts.run_id)
    gate = asyncio.Semaphore(opts.connect_concurrency)

    async def one(i: int) -> BenchClient | None:
        tpl = SaTemplate(
            opts.run_id, i, opts.stale_s, opts.xml_decl,
            lat=rng.uniform(-60, 60), lon=rng.uniform(-179, 179),
        )  # fmt: skip
        probe = opts.probes < 0 or i < opts.probes
        async with gate:
            client = await connect_one(
                opts,
                lambda: BenchClient(tpl, stats, pattern, codec, probe),
                ctx,
                stats,
            )
        if client is not None and opts.initial_sa:
            client.send_sa()  # announce ourselves, as ATAK does on connect
        return client

    # Bounded as a whole, not just per connection: a server that stalls handshakes must not
    # hold the run hostage. Whatever connected by the deadline is measured (and reported).
    tasks = [asyncio.create_task(one(i)) for i in range(opts.clients)]
    done, pending = await asyncio.wait(tasks, timeout=opts.connect_deadline_s)
    for task in pending:
        task.cancel()
    if pending:
        stats.protocol_errors.append(f"{len(pending)} clients not connected by the deadline")
        await asyncio.gather(*pending, return_exceptions=True)
    return [c for t in done if (c := t.result()) is not None]


async def sender(client: BenchClient, rate: float, start: float, stop: float) -> None:
    """Open-loop sender: event k is due at start + phase + k/rate, late ones are caught up."""
    phase = random.random() / rate
    k = 0
    while True:
        due = start + phase + k / rate
        if due >= stop:
            return
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if client.transport is None or client.transport.is_closing():
            return
        client.send_sa()
        k += 1


def percentile_ms(sorted_us: list[int], q: float) -> float | None:
    """Nearest-rank percentile in ms; None (JSON null) when nothing was received."""
    if not sorted_us:
        return None
    idx = min(len(sorted_us) - 1, max(0, round(q / 100 * (len(sorted_us) - 1))))
    return round(sorted_us[idx] / 1000.0, 3)


def summarize(opts: Options, stats: Stats, connected: int, window_s: float) -> dict[str, Any]:
    lat = sorted(stats.latencies_us)
    receivers = max(connected - 1, 0)
    return {
        "label": opts.label,
        "run_id": opts.run_id,
        "transport": "tls" if opts.tls else "tcp",
        "format": opts.wire,
        "clients": opts.clients,
        "clients_connected": connected,
        "senders": opts.senders,
        "rate_per_sender": opts.rate,
        "window_s": round(window_s, 3),
        "sent_per_s": round(stats.sent_in_window / window_s, 1),
        # Broadcast SA: every sent event should reach every other connected client.
        "offered_deliveries_per_s": round(stats.sent_in_window * receivers / window_s, 1),
        "delivered_per_s": round(stats.delivered / window_s, 1),
        "delivered": stats.delivered,
        "echoed_to_sender": stats.echoed,
        "send_skipped": stats.send_skipped,
        "latency_ms": {
            "n": len(lat),
            "p50": percentile_ms(lat, 50),
            "p90": percentile_ms(lat, 90),
            "p99": percentile_ms(lat, 99),
            "max": percentile_ms(lat, 100),
        },
        "rx_mib": round(stats.rx_bytes / 2**20, 1),
        "connect_failures": stats.connect_failures,
        "disconnects": stats.disconnects,
        "errors": stats.protocol_errors[:10],
    }


LAG_TICK_S = 0.05


async def watch_lag(stats: Stats) -> None:
    """Record how late this process's own event loop runs while measuring."""
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(LAG_TICK_S)
        if stats.measuring:
            stats.max_lag_s = max(stats.max_lag_s, loop.time() - before - LAG_TICK_S)


async def run(opts: Options) -> dict[str, Any]:
    stats = Stats()
    stop_early = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_early.set)

    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    t_connect = time.monotonic()
    clients = await connect_all(opts, stats)
    connect_s = time.monotonic() - t_connect
    if opts.ready_file:  # tiny local write: blocking is fine here
        with open(opts.ready_file, "w") as f:  # noqa: ASYNC230
            f.write(f"{len(clients)}\n")

    start = time.monotonic()
    window_start = start + opts.warmup_s
    stop = window_start + opts.duration_s
    senders = []
    if opts.rate > 0:
        senders = [
            loop.create_task(sender(c, opts.rate, start, stop)) for c in clients[: opts.senders]
        ]

    sampler = ServerSampler(opts.server_pid) if opts.server_pid else None
    lag = loop.create_task(watch_lag(stats))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop_early.wait(), opts.warmup_s)
    stats.measuring = True
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    t1 = time.monotonic()
    if sampler:
        sampler.start()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop_early.wait(), max(0.0, stop - time.monotonic()))
    stats.measuring = False
    window_s = time.monotonic() - t1
    usage2 = resource.getrusage(resource.RUSAGE_SELF)
    server = sampler.stop() if sampler else {}

    lag.cancel()
    for task in senders:
        task.cancel()
    stats.disconnects = sum(1 for c in clients if c.closed.done())
    for c in clients:
        if c.transport is not None:
            c.transport.abort()  # no TLS close_notify dance for 10k sessions

    report = summarize(opts, stats, len(clients), window_s)
    report["connect_s"] = round(connect_s, 2)
    # When this is large, the latency figures measure the load generator, not the server.
    report["loadgen_max_lag_ms"] = round(stats.max_lag_s * 1000, 1)
    report["loadgen_cpu_pct"] = round(
        100 * (_cpu(usage2) - _cpu(usage1)) / window_s if window_s else 0.0, 1
    )
    report["loadgen_cpu_connect_s"] = round(_cpu(usage1) - _cpu(usage0), 2)
    report.update(server)
    return report


def _cpu(u: resource.struct_rusage) -> float:
    return u.ru_utime + u.ru_stime


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    raise_nofile(opts.clients)
    runner: Callable[..., Any] = asyncio.run
    with contextlib.suppress(ImportError):
        if not opts.uvloop:
            raise ImportError
        import uvloop  # optional: a faster loop makes the loadgen less of a bottleneck

        runner = getattr(uvloop, "run", asyncio.run)
    report = runner(run(opts))
    report["event_loop"] = "uvloop" if runner is not asyncio.run else "asyncio"
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if report["clients_connected"] == opts.clients else 1


if __name__ == "__main__":
    sys.exit(main())
