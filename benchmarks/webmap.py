"""Web map under load: N live tracks at 1 Hz in one headless Chromium (issue 15).

Three processes: ``accord serve`` (its own data dir, random loopback ports), a track generator
(this script with ``--generate``: one TCP connection, N distinct uids, each reported once a
second), and Chromium (Debian's, software WebGL) with the web app signed in. Measured over
``--seconds``:

- the page's main-thread busy share: Chromium's ``TaskDuration`` metric (time the renderer's
  main thread spent in tasks) over wall time, and the long tasks (> 50 ms) seen;
- CPU of the server, the generator and the browser (utime+stime from /proc, whole trees);
- the server's CPU per web client against a streaming client: the same load with the browser
  replaced by one plain TCP reader; then N WebSocket readers of the feed (no browser; with
  permessage-deflate offered, as a browser offers it, and without) against N streaming
  readers over TCP and over TLS.

``--before-src DIR`` runs the server from ``DIR/src`` (e.g. ``git archive main | tar -x -C
DIR``; the page's built assets are copied from this tree when DIR has none), so before and
after can be alternated in one sitting; ``--no-browser`` skips the page (the readers only).

    .venv/bin/python benchmarks/webmap.py --tracks 2000 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.procstat import proc_cpu_ticks  # noqa: E402

TICK_S = 1 / os.sysconf("SC_CLK_TCK")
CHROMIUM = os.environ.get("ACCORD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sa(uid: str, callsign: str, lat: float, lon: float, course: float, now: float) -> bytes:
    t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    s = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now + 10))
    return (
        f'<event version="2.0" uid="{uid}" type="a-f-G-U-C" how="m-g" time="{t}Z" start="{t}Z"'
        f' stale="{s}Z"><point lat="{lat:.6f}" lon="{lon:.6f}" hae="0" ce="5" le="9999999"/>'
        f'<detail><contact callsign="{callsign}"/><track course="{course:.0f}" speed="10"/>'
        "</detail></event>"
    ).encode()


def generate(port: int, tracks: int) -> None:
    """The generator process: every track once a second, spread over the second."""
    sock = socket.create_connection(("127.0.0.1", port))
    start = time.time()
    step = 0
    while True:
        now = time.time()
        for i in range(tracks):
            lat = 48.0 + (i // 50) * 0.01 + 0.0001 * step
            lon = 11.0 + (i % 50) * 0.01
            sock.sendall(sa(f"GEN-{i}", f"T{i}", lat, lon, (i * 7) % 360, now))
        step += 1
        time.sleep(max(0.0, start + step - time.time()))


def cpu_s(pid: int) -> float:
    return proc_cpu_ticks(pid) * TICK_S


def server_env(before_src: str | None) -> dict[str, str]:
    """The server's environment: with ``before_src``, its code is that copy's."""
    env = dict(os.environ)
    if before_src:
        src = Path(before_src).resolve() / "src"
        vendor = src / "accord" / "web" / "vendor"
        if not vendor.exists():  # built by npm; copied (the static files follow no symlink)
            shutil.copytree(ROOT / "src" / "accord" / "web" / "vendor", vendor)
        env["PYTHONPATH"] = str(src)
        where = subprocess.run(
            [sys.executable, "-c", "import accord; print(accord.__file__)"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert where.startswith(str(src)), f"the server would not run {src}: {where}"
    return env


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from argon2 import PasswordHasher

    from accord.domain.groups import Membership
    from accord.identity.users import UserStore

    work = Path(tempfile.mkdtemp(prefix="accord-webmap-"))
    data = work / "data"
    data.mkdir()
    UserStore(data, hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)).add(
        "alice", "web map bench", Membership.both(["__ANON__"]), now_ms=int(time.time() * 1000)
    )
    (work / "accord.toml").write_text(
        "input_rate = 0\narchive = false\n" if args.no_history else "input_rate = 0\n"
    )
    tcp, enroll, tls = free_port(), free_port(), free_port()
    log = (work / "serve.log").open("w")
    # ACCORD_BENCH_PROFILE=DIR: the server runs under cProfile, dumped to DIR/serve.prof
    profile = os.environ.get("ACCORD_BENCH_PROFILE")
    profiled = ["-m", "cProfile", "-o", str(Path(profile) / "serve.prof")] if profile else []
    env = server_env(args.before_src)
    server = subprocess.Popen(  # noqa: ASYNC220 (setup, before anything is measured)
        [
            sys.executable,
            *profiled,
            "-m",
            "accord",
            "serve",
            "--config",
            str(work / "accord.toml"),
            "--data-dir",
            str(data),
            "--tcp-port",
            str(tcp),
            "--tls-port",
            str(tls),
            "--udp-port",
            "0",
            "--https-port",
            "0",
            "--drone-port",
            "0",
            "--enroll-port",
            str(enroll),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    procs = [server]
    try:
        deadline = time.monotonic() + 30
        while "listening" not in (work / "serve.log").read_text():
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit((work / "serve.log").read_text())
            await asyncio.sleep(0.1)
        gen = subprocess.Popen(  # noqa: ASYNC220 (setup, before anything is measured)
            [sys.executable, __file__, "--generate", str(tcp), "--tracks", str(args.tracks)]
        )
        procs.append(gen)
        results: dict[str, Any] = {"tracks": args.tracks, "seconds": args.seconds}
        if args.no_browser:
            await asyncio.sleep(5)  # the picture fills up
            results["server_cpu_pct_no_client"] = await no_client(args, server.pid)
        else:
            results.update(await browser_phase(args, enroll, server.pid, gen.pid))
            results.update(await stream_phase(args, tcp, server.pid))
        reader_tls = reader_context(data, work)
        for readers in sorted({1, args.readers}):
            results.update(
                await readers_phase(args, tcp, enroll, server.pid, readers, (tls, reader_tls))
            )
        return results
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(10)


async def browser_phase(args: argparse.Namespace, port: int, server: int, gen: int) -> Any:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        context = await browser.new_context(
            ignore_https_errors=True, bypass_csp=True, viewport={"width": 1280, "height": 800}
        )
        page = await context.new_page()
        await page.goto(f"https://127.0.0.1:{port}/web/")
        await page.fill("input[name=username]", "alice")
        await page.fill("input[name=password]", "web map bench")
        await page.click("#signin-button")
        await page.wait_for_function("window.accord && window.accord.ready", timeout=30000)
        await page.evaluate("window.accord.map.jumpTo({center: [11.25, 48.2], zoom: 10})")
        await page.wait_for_function(f"window.accord.items.size >= {args.tracks}", timeout=60000)
        # and drawn once (each symbol's image made) before the window starts
        await page.wait_for_function(f"window.accord.stats.shown >= {args.tracks}", timeout=60000)
        await page.evaluate(
            "window.__long = 0; new PerformanceObserver(l => { window.__long +="
            " l.getEntries().length; }).observe({entryTypes: ['longtask']});"
        )
        cdp = await context.new_cdp_session(page)
        await cdp.send("Performance.enable")
        browser_pid = browser_pid_of(CHROMIUM)

        def task_s(metrics: dict[str, Any]) -> float:
            return float(
                next(m["value"] for m in metrics["metrics"] if m["name"] == "TaskDuration")
            )

        if args.profile_page:
            await cdp.send("Profiler.enable")
            await cdp.send("Profiler.setSamplingInterval", {"interval": 500})
            await cdp.send("Profiler.start")
        m0, t0 = await cdp.send("Performance.getMetrics"), time.monotonic()
        c0 = (cpu_s(server), cpu_s(gen), cpu_s(browser_pid) if browser_pid else 0.0)
        i0, s0 = await page.evaluate("[window.accord.stats.items, window.accord.stats]")
        await asyncio.sleep(args.seconds)
        m1, t1 = await cdp.send("Performance.getMetrics"), time.monotonic()
        c1 = (cpu_s(server), cpu_s(gen), cpu_s(browser_pid) if browser_pid else 0.0)
        i1, s1 = await page.evaluate("[window.accord.stats.items, window.accord.stats]")
        wall = t1 - t0
        if args.profile_page:
            profile = (await cdp.send("Profiler.stop"))["profile"]
            print_profile(profile, wall)
        shot = ROOT / "test-artifacts" / "web" / "bench-webmap.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(shot))
        out = {
            "main_thread_busy_pct": 100 * (task_s(m1) - task_s(m0)) / wall,
            "long_tasks": await page.evaluate("window.__long"),
            "items_per_s_to_browser": (i1 - i0) / wall,
            "map_updates_per_s": (s1["renders"] - s0["renders"]) / wall,
            "features_changed_per_s": (s1.get("changed", 0) - s0.get("changed", 0)) / wall,
            "images_drawn": s1.get("images", 0) - s0.get("images", 0),
            "server_cpu_pct_web": 100 * (c1[0] - c0[0]) / wall,
            "generator_cpu_pct": 100 * (c1[1] - c0[1]) / wall,
            "browser_cpu_pct": 100 * (c1[2] - c0[2]) / wall,
            "screenshot": str(shot),
        }
        await browser.close()
        out["server_cpu_pct_no_client"] = await no_client(args, server)
        return out


async def no_client(args: argparse.Namespace, server: int) -> float:
    """The server alone with the generator and no client, as the base of every phase."""
    base0, b0 = cpu_s(server), time.monotonic()
    await asyncio.sleep(args.seconds / 2)
    return 100 * (cpu_s(server) - base0) / (time.monotonic() - b0)


async def stream_phase(args: argparse.Namespace, tcp: int, server: int) -> Any:
    reader, writer = await asyncio.open_connection("127.0.0.1", tcp)
    got = 0

    async def drain() -> None:
        nonlocal got
        while True:
            data = await reader.read(1 << 16)
            if not data:
                return
            got += data.count(b"</event>")

    task = asyncio.get_running_loop().create_task(drain())
    await asyncio.sleep(2)
    c0, t0, g0 = cpu_s(server), time.monotonic(), got
    await asyncio.sleep(args.seconds)
    wall = time.monotonic() - t0
    out = {
        "server_cpu_pct_stream": 100 * (cpu_s(server) - c0) / wall,
        "events_per_s_to_stream": (got - g0) / wall,
    }
    task.cancel()
    writer.close()
    return out


def reader_context(data: Path, work: Path) -> ssl.SSLContext:
    """A client certificate in alice's group, for streaming readers over TLS (as ATAK on 8089)."""
    out = work / "reader"
    subprocess.run(
        [sys.executable, "-m", "accord", "cert", "client", "bench-reader", "--group", "__ANON__",
         "--data-dir", str(data), "--out", str(out)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    ctx = ssl.create_default_context(cafile=str(data / "pki" / "ca.pem"))
    ctx.check_hostname = False
    ctx.load_cert_chain(str(out / "bench-reader.pem"), str(out / "bench-reader.key"))
    return ctx


async def readers_phase(
    args: argparse.Namespace,
    tcp: int,
    enroll: int,
    server: int,
    readers: int,
    tls: tuple[int, ssl.SSLContext],
) -> Any:
    """The server's CPU with ``readers`` plain WebSocket readers of the web feed (signed in,
    no browser), then with as many streaming readers over TCP, then over TLS (what ATAK uses,
    as a browser's WebSocket is TLS too): the cost per client of each."""
    import httpx
    from tests.web.wsclient import WsClient

    origin = f"https://127.0.0.1:{enroll}"
    async with httpx.AsyncClient(verify=False) as client:
        response = await client.post(
            f"{origin}/web/signin",
            data={"username": "alice", "password": "web map bench"},
            headers={"origin": origin},
        )
        cookie = "; ".join(f"{k}={v}" for k, v in response.cookies.items())
    got = {"web": 0, "web-deflate": 0, "stream": 0, "tls": 0}
    accepted = {"web": False, "web-deflate": False}

    async def read_ws(ws: WsClient, kind: str) -> None:
        while ws.closed is None:
            await ws._events()  # counted, not decoded: the reader must keep up
            got[kind] += sum(m.count('"op":"put"') for m in ws.messages)
            ws.messages.clear()

    async def read_tcp(reader: asyncio.StreamReader, kind: str = "stream") -> None:
        while data := await reader.read(1 << 16):
            got[kind] += data.count(b"</event>")

    async def window(kind: str) -> tuple[float, float]:
        await asyncio.sleep(2)
        c0, t0, g0, m0 = cpu_s(server), time.monotonic(), got[kind], time.process_time()
        await asyncio.sleep(args.seconds)
        wall = time.monotonic() - t0
        mine = 100 * (time.process_time() - m0) / wall
        print(f"{readers} {kind} reader(s): this process {mine:.1f} % CPU", file=sys.stderr)
        return 100 * (cpu_s(server) - c0) / wall, (got[kind] - g0) / wall

    loop = asyncio.get_running_loop()

    async def web_window(deflate: bool) -> tuple[float, float]:
        kind = "web-deflate" if deflate else "web"
        web = [
            await WsClient.connect(enroll, origin=origin, cookie=cookie, deflate=deflate)
            for _ in range(readers)
        ]
        for ws in web:
            assert await ws.accepted(), "the web feed refused the bench's session"
            accepted[kind] = bool(ws.extensions)  # the server may refuse to compress
        tasks = [loop.create_task(read_ws(ws, kind)) for ws in web]
        measured = await window(kind)
        for task in tasks:
            task.cancel()
        for ws in web:
            ws.writer.close()  # the transport owns the socket here (no uvloop duplicate)
            with contextlib.suppress(OSError, ssl.SSLError):
                await ws.writer.wait_closed()
        return measured

    async def tls_window() -> tuple[float, float]:
        port, ctx = tls
        streams = [
            await asyncio.open_connection("127.0.0.1", port, ssl=ctx) for _ in range(readers)
        ]
        tasks = [loop.create_task(read_tcp(reader, "tls")) for reader, _ in streams]
        measured = await window("tls")
        for task in tasks:
            task.cancel()
        for _, writer in streams:
            writer.close()
        return measured

    if readers == args.readers and args.pairs:
        # Neighbouring windows, the order swapped each pair: WebSocket minus TLS per reader
        pairs: list[float] = []
        for i in range(args.pairs):
            if i % 2:
                tls_cpu = (await tls_window())[0]
                web_cpu = (await web_window(False))[0]
            else:
                web_cpu = (await web_window(False))[0]
                tls_cpu = (await tls_window())[0]
            pairs.append((web_cpu - tls_cpu) / readers)
            print(f"pair {i + 1}: WebSocket {web_cpu:.1f} % TLS {tls_cpu:.1f} %", file=sys.stderr)
        shown = " ".join(f"{d:+.2f}" for d in sorted(pairs))
        return {f"ws_minus_tls_pct_per_reader_{readers}": shown}
    # The base of this phase: no client just before and just after it (the machine's load moves)
    before = await no_client(args, server)
    deflate_cpu, deflate_rate = await web_window(True)
    web_cpu, web_rate = await web_window(False)
    streams = [await asyncio.open_connection("127.0.0.1", tcp) for _ in range(readers)]
    tasks = [loop.create_task(read_tcp(reader)) for reader, _ in streams]
    stream_cpu, stream_rate = await window("stream")
    for task in tasks:
        task.cancel()
    for _, writer in streams:
        writer.close()
    port, ctx = tls
    streams = [await asyncio.open_connection("127.0.0.1", port, ssl=ctx) for _ in range(readers)]
    tasks = [loop.create_task(read_tcp(reader, "tls")) for reader, _ in streams]
    tls_cpu, tls_rate = await window("tls")
    for task in tasks:
        task.cancel()
    for _, writer in streams:
        writer.close()
    await asyncio.sleep(1)
    after = await no_client(args, server)
    return {
        f"server_cpu_pct_{readers}_no_client": (before + after) / 2,
        f"ws_deflate_accepted_{readers}": accepted["web-deflate"],
        f"server_cpu_pct_{readers}_ws_deflate_readers": deflate_cpu,
        f"items_per_s_per_ws_deflate_reader_{readers}": deflate_rate / readers,
        f"server_cpu_pct_{readers}_tls_readers": tls_cpu,
        f"events_per_s_per_tls_reader_{readers}": tls_rate / readers,
        f"server_cpu_pct_{readers}_ws_readers": web_cpu,
        f"items_per_s_per_ws_reader_{readers}": web_rate / readers,
        f"server_cpu_pct_{readers}_stream_readers": stream_cpu,
        f"events_per_s_per_stream_reader_{readers}": stream_rate / readers,
    }


def print_profile(profile: dict[str, Any], wall_s: float, top: int = 25) -> None:
    """The page's main-thread functions by self time (a CDP CPU profile), to stderr."""
    nodes = {n["id"]: n for n in profile["nodes"]}
    self_us: dict[str, float] = {}
    deltas = profile.get("timeDeltas", [])
    for sample, delta in zip(profile.get("samples", []), [*deltas[1:], 0], strict=False):
        frame = nodes[sample]["callFrame"]
        url = frame["url"].rsplit("/", 1)[-1]
        key = f"{frame['functionName'] or '(anonymous)'} {url}:{frame['lineNumber'] + 1}"
        self_us[key] = self_us.get(key, 0.0) + delta
    for key, us in sorted(self_us.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{100 * us / 1e6 / wall_s:6.2f} %  {key}", file=sys.stderr)


def browser_pid_of(executable: str) -> int:
    """The newest Chromium browser process (its renderer and GPU processes are children)."""
    best = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            name = cmd[0].decode(errors="replace") if cmd else ""
            if name.endswith(("chromium", "chrome")) and not any(
                a.startswith(b"--type=") for a in cmd
            ):
                best = max(best, int(entry.name))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--no-history", action="store_true", help="history off on the server")
    parser.add_argument(
        "--readers", type=int, default=4, help="WebSocket / TCP readers in the last phase"
    )
    parser.add_argument(
        "--profile-page", action="store_true", help="print the page's hottest functions"
    )
    parser.add_argument(
        "--before-src", metavar="DIR", help="run the server from DIR/src (a copy of main)"
    )
    parser.add_argument("--no-browser", action="store_true", help="the readers' phases only")
    parser.add_argument(
        "--pairs",
        type=int,
        default=0,
        metavar="K",
        help="instead of the last readers phase: K neighbouring WebSocket/TLS window pairs",
    )
    parser.add_argument("--generate", type=int, metavar="TCP_PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(args.generate, args.tracks)
        return
    results = asyncio.run(measure(args))
    width = max(len(k) for k in results)
    for key, value in results.items():
        shown = f"{value:.1f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")
    base = results["server_cpu_pct_no_client"]  # after the browser
    if not args.no_browser:
        web, stream = results["server_cpu_pct_web"], results["server_cpu_pct_stream"]
        print(
            f"server CPU per client above no client: web {web - base:.1f} %, "
            f"stream {stream - base:.1f} %"
        )
    for n in sorted({1, args.readers}):
        if f"server_cpu_pct_{n}_no_client" not in results:
            continue  # --pairs: printed above
        base = results[f"server_cpu_pct_{n}_no_client"]  # around the readers
        ws = results[f"server_cpu_pct_{n}_ws_readers"]
        deflated = results[f"server_cpu_pct_{n}_ws_deflate_readers"]
        tcp = results[f"server_cpu_pct_{n}_stream_readers"]
        tls = results[f"server_cpu_pct_{n}_tls_readers"]
        print(
            f"{n} reader(s), server CPU per reader above no client: "
            f"WebSocket {(ws - base) / n:.1f} % (deflate offered {(deflated - base) / n:.1f} %), "
            f"stream TCP {(tcp - base) / n:.1f} %, stream TLS {(tls - base) / n:.1f} %"
        )


if __name__ == "__main__":
    main()
